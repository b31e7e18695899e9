"""OpenAPI schema generation: name nested serializers after their view, so that the many
`InputSerializer` / `OutputSerializer` classes become distinct components (e.g. `OrderCreateInput`)."""
from typing import Any, Literal

from drf_spectacular.openapi import AutoSchema


class MarketplaceAutoSchema(AutoSchema):
    def get_serializer_name(self, serializer: Any, direction: Literal["request", "response"]) -> str:
        outer, _, inner = type(serializer).__qualname__.rpartition(".")
        if not outer:
            return str(super().get_serializer_name(serializer, direction))
        return f"{outer.removesuffix('Api')}{inner.removesuffix('Serializer')}"
