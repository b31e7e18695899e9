from django.urls import path

from marketplace import apis_access

urlpatterns = [
    path("tokens/", apis_access.TokenListApi.as_view(), name="api-token-list"),
    path("tokens/create/", apis_access.TokenCreateApi.as_view(), name="api-token-create"),
    path("tokens/<int:token_id>/revoke/", apis_access.TokenRevokeApi.as_view(), name="api-token-revoke"),
    path("organisation/tokens/", apis_access.OrganisationTokenListApi.as_view(), name="api-organisation-tokens"),
    path("organisation/members/", apis_access.MemberListApi.as_view(), name="api-member-list"),
    path("organisation/members/create/", apis_access.MemberCreateApi.as_view(), name="api-member-create"),
    path("organisation/members/<int:member_id>/disable/", apis_access.MemberDisableApi.as_view(),
         name="api-member-disable"),
    path("organisation/members/<int:member_id>/enable/", apis_access.MemberEnableApi.as_view(),
         name="api-member-enable"),
]
