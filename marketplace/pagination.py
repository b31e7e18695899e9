"""Limit/offset pagination with a capped page size, for every list endpoint of the API.

A list answers `{"count", "next", "previous", "results"}`. `limit` (default 20) is capped at 100: a larger
value is served as 100, so no client can make one request read the whole table; `next` then carries the
capped limit. A `limit` or `offset` that is not a whole number (or a `limit` below 1) is a 400 naming the
parameter, never a silent fallback. The limit and offset are checked before the database is touched.

How a list endpoint (an `APIView`) uses it:

    @extend_schema(parameters=[*CappedLimitOffsetPagination.parameters()],
                   responses=paginated_serializer(OrderOutput))
    def get(self, request):
        queryset = selectors.order_list(organisation=...)       # ordered, with its joins prefetched
        return paginated_response(queryset=queryset, serializer_class=OrderOutput, request=request, view=self)
"""
from __future__ import annotations

from functools import cache
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketplace.exceptions import ApplicationError


class CappedLimitOffsetPagination(LimitOffsetPagination):
    """`?limit=&offset=`; the limit defaults to `default_limit` and is capped at `max_limit`."""

    default_limit = 20
    max_limit = 100

    def paginate_queryset(self, queryset: Any, request: Request, view: APIView | None = None) -> list[Any]:
        # Parse both parameters first: a bad one answers 400 before any query runs.
        self.limit = self.get_limit(request)
        self.offset = self.get_offset(request)
        self.request = request
        self.count = self.get_count(queryset)
        if self.count == 0 or self.offset >= self.count:
            return []
        return list(queryset[self.offset:self.offset + self.limit])

    def get_limit(self, request: Request) -> int:
        limit = self._whole_number(request, self.limit_query_param, default=self.default_limit)
        if limit < 1:
            raise ApplicationError(
                _("%(name)s must be at least 1 (at most %(max)s are served).") % {
                    "name": self.limit_query_param, "max": self.max_limit},
                {"field": self.limit_query_param, "max": self.max_limit},
            )
        return min(limit, self.max_limit)

    def get_offset(self, request: Request) -> int:
        offset = self._whole_number(request, self.offset_query_param, default=0)
        if offset < 0:
            raise ApplicationError(_("%(name)s must not be negative.") % {"name": self.offset_query_param},
                                   {"field": self.offset_query_param})
        return offset

    @staticmethod
    def _whole_number(request: Request, name: str, *, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw.strip())
        except ValueError:  # also raised for absurdly long digit strings
            raise ApplicationError(_("%(name)s must be a whole number.") % {"name": name}, {"field": name}) from None

    @classmethod
    def parameters(cls) -> list[OpenApiParameter]:
        """The query parameters, for `extend_schema(parameters=...)` of an `APIView`."""
        return [
            OpenApiParameter(
                cls.limit_query_param, int, OpenApiParameter.QUERY,
                description=f"Results per page: default {cls.default_limit}, at most {cls.max_limit} "
                            f"(a larger value is served as {cls.max_limit}). Below 1 or not a number: 400.",
            ),
            OpenApiParameter(
                cls.offset_query_param, int, OpenApiParameter.QUERY,
                description="Index of the first result (0-based). Past the end: an empty page.",
            ),
        ]


@cache
def paginated_serializer(serializer_class: type[serializers.BaseSerializer]) -> type[serializers.Serializer]:
    """The schema of a page of `serializer_class` items: `{"count", "next", "previous", "results"}`."""
    return type(
        f"Paginated{serializer_class.__name__.removesuffix('Serializer')}List",
        (serializers.Serializer,),
        {
            "count": serializers.IntegerField(help_text="Results over all pages."),
            "next": serializers.URLField(allow_null=True, help_text="The next page, or null on the last."),
            "previous": serializers.URLField(allow_null=True, help_text="The previous page, or null on the first."),
            "results": serializer_class(many=True),
            "__module__": __name__,
        },
    )


def paginated_response(
    *,
    queryset: QuerySet[Any],
    serializer_class: type[serializers.BaseSerializer],
    request: Request,
    view: APIView,
    pagination_class: type[CappedLimitOffsetPagination] = CappedLimitOffsetPagination,
) -> Response:
    """One page of `queryset` serialized with `serializer_class`. The queryset must be ordered (stable
    pages) and carry its joins (select/prefetch_related) so a page costs a fixed number of queries."""
    paginator = pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)
