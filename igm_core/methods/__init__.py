"""Training methods: joint, unimodal, alternating, mla, igm and ogm_ge."""
