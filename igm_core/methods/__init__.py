"""Training methods, one module each: joint, unimodal, alternating, mla, igm and ogm_ge.

base.py is what they share (stages, the step context, the Method interface); fusion.py the late
fusion of unimodal outputs; projected.py the stage-to-stage gradient projection IGM (and MLA's
stage-wise variant) build on; sam.py the pieces of sharpness-aware minimisation. A new method is
its module here, its entry in igm_core/catalog/methods.py, and a test.
"""
