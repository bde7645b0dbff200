"""Names a spec may use for modalities: one pattern shared by the catalog and the data loaders.

Imports nothing of igm_core, so any module can use it without creating an import cycle.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MODALITY_NAME = r"^[a-z][a-z0-9_]{0,31}$"
ModalityName = Annotated[str, Field(pattern=MODALITY_NAME)]
