"""The `teach:` section of config.yaml: which gallery of taught examples a run matches its embeddings against,
and how near an example must be (app/teach/). Its own module because the gallery is the device's (taught once on
the board, used by every pipeline whose crop stage embeds), not a pipeline's."""

from __future__ import annotations

from pydantic import Field

from app.config.base import Strict

#: the gallery's default file, in the models folder (`models.dir`)
DEFAULT_GALLERY = "teach.json"


class TeachConfig(Strict):
    gallery: str = Field("", description=f"the taught examples' file (default: {DEFAULT_GALLERY} in models.dir; "
                         "relative paths: to the config file)")
    threshold: float = Field(0.7, gt=0, le=1, description="the least cosine similarity to a taught example for its "
                             "name (or, for a --not example, for the detection to be dropped)")
    margin: float = Field(0.05, ge=0, le=1, description="the nearest example must beat the nearest one of another "
                          "name (or a --not one) by this much, else the detection gets no name")
