"""Tables: the user's columns with their types; the `Modality` base is their behaviour."""

from __future__ import annotations

from flows.modalities.base import Modality


class TableModality(Modality):
    name = "table"
