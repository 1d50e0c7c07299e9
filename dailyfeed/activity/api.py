"""The activity module over HTTP: the record endpoints (the feign target), queries and follows."""
from __future__ import annotations

from flask import Blueprint, g, request

from ..auth import member_required, service_required
from ..errors import InvalidInput
from ..events import RECORD_PATHS, InvalidEvent, event_from_record_request
from ..extension import get_container
from ..ops import tracing
from ..web import page_body, page_params, success

bp = Blueprint("activity", __name__)



def _record_view(category):
    @service_required
    def record():
        try:
            # the caller's traceparent header (the request's trace, dailyfeed.ops) is kept with the activity
            event = tracing.stamp(event_from_record_request(request.get_json(silent=True), category))
        except InvalidEvent as exc:
            raise InvalidInput(str(exc)) from None
        created, activity = get_container().activity_service.record_activity(event)
        return success(activity, 201 if created else 200)

    record.__name__ = f"record_{category.value.lower()}"
    return record


for _category, _path in RECORD_PATHS.items():
    bp.add_url_rule(f"/api/member-activities/{_path}", view_func=_record_view(_category), methods=["POST"])


@bp.get("/api/member-activities/followings")
@member_required
def followings():
    page, size = page_params()
    items = get_container().activity_service.followings_feed(g.member_id, page, size, request.args.get("type"))
    return success(page_body(items, page, size))


@bp.get("/api/members/<id:member_id>/activities")
def member_activities(member_id: int):
    page, size = page_params()
    items = get_container().activity_service.member_activities(member_id, page, size, request.args.get("type"))
    return success(page_body(items, page, size))


@bp.post("/api/members/<id:member_id>/follow")
@member_required
def follow(member_id: int):
    get_container().activity_service.follow(g.member_id, member_id)
    return success({"followerId": g.member_id, "followingId": member_id}, 201)


@bp.delete("/api/members/<id:member_id>/follow")
@member_required
def unfollow(member_id: int):
    get_container().activity_service.unfollow(g.member_id, member_id)
    return success({"followerId": g.member_id, "followingId": member_id})
