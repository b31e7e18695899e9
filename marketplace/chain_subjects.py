"""What a chain write asked of a node is about, as a typed key: the node echoes the subject back with its
report, and the receiver dispatches on the key's kind (never on a string prefix)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SubjectKind(StrEnum):
    ORDER_GRANT = "order-grant"  # an OrderGrant's grant written on chain
    ORDER_REVOKE = "order-revoke"  # an OrderGrant's grant revoked on chain
    PRODUCT = "product"  # a product registered as an asset


@dataclass(frozen=True)
class Subject:
    kind: SubjectKind
    id: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Subject | None:
        """The subject a report names, or None when it is not one of ours."""
        kind, separator, ident = text.partition(":")
        if not separator or not ident:
            return None
        try:
            return cls(SubjectKind(kind), ident)
        except ValueError:
            return None

    @property
    def number(self) -> int | None:
        """The id as a row number, for kinds keyed by one (None when it is not a number)."""
        return int(self.id) if self.id.isdigit() else None
