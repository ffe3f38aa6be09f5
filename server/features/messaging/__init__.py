"""Messaging: durable, idempotent, gap-free conversations, 1:1 and in groups; read marks and typing."""

from corridor.protocol.messages import (
    DepartmentGroupCreate,
    Edit,
    GroupAnnounce,
    GroupAnnouncementRead,
    GroupCreate,
    GroupDissolve,
    GroupGet,
    GroupHistory,
    GroupLeave,
    GroupList,
    GroupMembersAdd,
    GroupMembersRemove,
    GroupRoleSet,
    GroupSend,
    GroupUpdate,
    History,
    MarkDelivered,
    MarkRead,
    ReadReceipts,
    Recall,
    Send,
    Sync,
    Typing,
    Unread,
)

from ...policy import Targets
from ...services import Services
from ...sessions import ADMINS, CHATTERS, DEPT_ADMIN, MEMBERS
from ..base import Feature, Route
from .department_groups import DepartmentFollower
from .group_handlers import GroupHandlers
from .handlers import MessagingHandlers
from .migrations import MIGRATIONS
from .read_handlers import ReadHandlers

__all__ = ["MIGRATIONS", "feature"]


def feature(services: Services) -> Feature:
    """Wire the messaging and group handlers to their requests and actions."""
    handlers = MessagingHandlers(services)
    groups = GroupHandlers(services, handlers)
    reads = ReadHandlers(services)
    return Feature(
        name="messaging",
        actions={
            "message.send": CHATTERS,
            "message.read": MEMBERS,
            "group.manage": CHATTERS,
            "group.department": ADMINS | {DEPT_ADMIN},
        },
        routes=(
            Route(Send, handlers.send, "message.send", lambda m: Targets(recipients=(m.to,))),
            Route(Sync, handlers.sync, "message.read"),
            Route(History, handlers.history, "message.read"),
            Route(GroupCreate, groups.group_create, "group.manage", lambda m: Targets(recipients=m.members)),
            Route(
                DepartmentGroupCreate,
                groups.department_group_create,
                "group.department",
                lambda m: Targets(departments=(m.department,)),
            ),
            Route(GroupList, groups.group_list, "message.read"),
            Route(GroupGet, groups.group_get, "message.read"),
            Route(GroupMembersAdd, groups.group_members_add, "group.manage", lambda m: Targets(recipients=m.users)),
            Route(GroupMembersRemove, groups.group_members_remove, "group.manage"),
            Route(GroupRoleSet, groups.group_role_set, "group.manage"),
            Route(GroupUpdate, groups.group_update, "group.manage"),
            Route(GroupAnnounce, groups.group_announce, "group.manage"),
            Route(GroupAnnouncementRead, groups.group_announcement_read, "message.read"),
            Route(GroupLeave, groups.group_leave, "message.read"),
            Route(GroupDissolve, groups.group_dissolve, "group.manage"),
            Route(GroupSend, groups.group_send, "message.send"),
            Route(GroupHistory, groups.group_history, "message.read"),
            Route(MarkRead, reads.mark_read, "message.read"),
            Route(MarkDelivered, reads.mark_delivered, "message.read"),
            Route(Unread, reads.unread, "message.read"),
            Route(ReadReceipts, reads.read_receipts, "message.read"),
            Route(Typing, reads.typing, "message.send", lambda m: Targets(recipients=(m.to,))),
            Route(Recall, handlers.recall, "message.send"),
            Route(Edit, handlers.edit, "message.send"),
        ),
        tasks=(DepartmentFollower(services, handlers).run,),
    )
