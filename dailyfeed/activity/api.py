"""The activity module over HTTP: the record endpoints (the feign target), queries and follows."""

from __future__ import annotations

from flask import Blueprint, g
from pydantic import BaseModel, ConfigDict, Field

from ..auth import member_required, service_required
from ..contract import operation
from ..errors import InvalidInput
from ..events import RECORD_PATHS, ActivityTypeName, InvalidEvent, RecordBody, event_from_record_request, utcnow
from ..extension import get_container
from ..telemetry import tracing
from ..web import Page, PageQuery, page_body, success

bp = Blueprint("activity", __name__)


class ActivityQuery(PageQuery):
    type: ActivityTypeName | None = Field(None, description="only activities of this type")


class Activity(BaseModel):
    """A recorded member activity."""

    model_config = ConfigDict(extra="forbid")

    id: str
    memberId: int
    postId: int | None
    commentId: int | None
    followingId: int | None = None
    memberActivityType: str
    category: str
    messageKey: str = Field(description="the key this activity was recorded under")
    createdAt: str | None = Field(json_schema_extra={"format": "date-time"})
    updatedAt: str | None = Field(json_schema_extra={"format": "date-time"})


class Follow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    followerId: int
    followingId: int


def _record_view(category):
    @operation(
        body=RecordBody,
        response=Activity,
        status=201,
        auth=service_required,
        summary=f"Record a {category.value} activity (the feign target)",
        tags=("activity",),
    )
    def record(body: RecordBody):
        """201 when the key is new, 200 when it was recorded before (the answer is then the stored activity).
        Without messageKey (the original's feign body) the key is built from the time of receipt; the answer's
        messageKey says which key was recorded."""
        try:
            # the caller's traceparent header (the request's trace, dailyfeed.ops) is kept with the activity
            event = tracing.stamp(event_from_record_request(body, category, received_at=utcnow()))
        except InvalidEvent as exc:
            raise InvalidInput(str(exc)) from None
        created, activity = get_container().activity_service.record_activity(event)
        return success(activity, 201 if created else 200)

    record.__name__ = f"record_{category.value.lower()}"
    return record


for _category, _path in RECORD_PATHS.items():
    bp.add_url_rule(f"/api/member-activities/{_path}", view_func=_record_view(_category), methods=["POST"])


@bp.get("/api/member-activities/followings")
@operation(query=ActivityQuery, response=Page[Activity], auth=member_required)
def followings(query: ActivityQuery):
    """Activities of the members you follow, newest first."""
    items = get_container().activity_service.followings_feed(g.member_id, query.page, query.size, query.type)
    return success(page_body(items, query))


@bp.get("/api/members/<id:member_id>/activities")
@operation(query=ActivityQuery, response=Page[Activity])
def member_activities(member_id: int, query: ActivityQuery):
    """One member's activities, newest first."""
    items = get_container().activity_service.member_activities(member_id, query.page, query.size, query.type)
    return success(page_body(items, query))


@bp.post("/api/members/<id:member_id>/follow")
@operation(response=Follow, status=201, auth=member_required, errors=(400, 409))
def follow(member_id: int):
    """Follow a member (records MEMBER_FOLLOW); at most 999, not yourself (400), not twice (409)."""
    get_container().activity_service.follow(g.member_id, member_id)
    return success({"followerId": g.member_id, "followingId": member_id}, 201)


@bp.delete("/api/members/<id:member_id>/follow")
@operation(response=Follow, auth=member_required)
def unfollow(member_id: int):
    """Stop following a member (records MEMBER_UNFOLLOW); not following is 404."""
    get_container().activity_service.unfollow(g.member_id, member_id)
    return success({"followerId": g.member_id, "followingId": member_id})
