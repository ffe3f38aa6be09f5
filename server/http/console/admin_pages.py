"""The IT admins' pages: server status, the org tree and its people (create, invite,
deactivate with handover, reactivate, devices, roles), the organisation's policies, integrations,
and the admin log. Department admins see the people pages; the router's policy keeps what they
do inside their subtrees. Each action is the protocol request an admin client would send."""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from corridor.protocol.errors import make_error
from corridor.protocol.integrations import SCOPES, IntegrationAdd, IntegrationList, IntegrationRevoke, IntegrationRotate
from corridor.protocol.messages import (
    POLICY_KINDS,
    AdminLog,
    DeviceList,
    DeviceRevoke,
    DirectorySync,
    InviteReissue,
    PolicyList,
    PolicyRemove,
    PolicySet,
    RoleSet,
    UserAdd,
    UserDeactivate,
    UserReactivate,
)
from corridor.protocol.ops import ServerStatus

from ...sessions import DEPT_ADMIN
from .i18n import translator
from .web import Console, Visit

ADMIN = ("admin",)
PEOPLE_ADMINS = ("admin", DEPT_ADMIN)
# Enough pages of `directory_sync` for the largest directory the protocol allows many times
# over; a loop that has not ended by then is a fault, not a big organisation.
MAX_SYNC_PAGES = 200


def numbers(text: str, what: str) -> tuple[int, ...]:
    """Whole numbers from a form field (separated by commas or spaces); BAD_MESSAGE otherwise."""
    parts = text.replace(",", " ").split()
    if not all(part.isdigit() for part in parts):
        raise make_error("BAD_MESSAGE", f"{what} must be whole numbers, not {text!r}")
    return tuple(int(part) for part in parts)


def optional_number(text: str, what: str) -> int | None:
    """One whole number, or None for an empty field."""
    found = numbers(text, what)
    if len(found) > 1:
        raise make_error("BAD_MESSAGE", f"{what} is one number, not {text!r}")
    return found[0] if found else None


class AdminPages:
    """Endpoints for IT admins (and department admins, on the people pages)."""

    def __init__(self, console: Console):
        self.console = console

    async def _directory(self, visit: Visit):
        """The whole directory as the admin sees it: (departments by id, people)."""
        since, view, departments, people = 0, "", {}, {}
        for _page in range(MAX_SYNC_PAGES):
            result = await self.console.call(visit, DirectorySync(since=since, view=view))
            departments.update((d.id, d) for d in result.departments)
            people.update((p.user, p) for p in result.people)
            since, view = result.version, result.view
            if not result.more:
                break
        return departments, sorted(people.values(), key=lambda p: p.user)

    async def status(self, visit: Visit) -> Response:
        """GET /console/status: the server's health."""
        return self.console.show(visit, "status.html", health=await self.console.call(visit, ServerStatus()))

    async def people(self, visit: Visit, **shown) -> Response:
        """GET /console/users: the org tree with its people, and the form to add someone."""
        departments, people = await self._directory(visit)
        chosen = optional_number(visit.request.query_params.get("department", ""), "department")
        children: dict[int | None, list] = {}
        for department in sorted(departments.values(), key=lambda d: d.name):
            children.setdefault(department.parent, []).append(department)
        listed = [p for p in people if chosen is None or chosen in p.departments]
        roles = {p.user: getattr(self.console.services.users.by_name(p.user), "role", "") for p in listed}
        return self.console.show(
            visit,
            "users.html",
            children=children,
            departments=departments,
            people=listed,
            roles=roles,
            chosen=chosen,
            **shown,
        )

    async def add_user(self, visit: Visit) -> Response:
        """POST /console/users: create an account and show its one-time invite."""
        department = optional_number(visit.field("department"), "department")
        added = await self.console.call(
            visit,
            UserAdd.from_fields(
                {
                    "username": visit.field("username"),
                    "display_name": visit.field("display_name"),
                    "role": visit.field("role", "user") or "user",
                    "departments": [department] if department is not None else [],
                }
            ),
        )
        return self.console.show(visit, "invite.html", user=added.user, invite=added.invite, expires=added.expires)

    async def person(self, visit: Visit, **shown) -> Response:
        """GET /console/users/{name}: one account, its devices, and what may be done to it."""
        name = visit.request.path_params["name"]
        departments, people = await self._directory(visit)
        found = next((p for p in people if p.user == name), None)
        if found is None:
            raise make_error("NO_SUCH_USER", f"nobody is called {name!r}")
        devices = await self.console.call(visit, DeviceList.from_fields({"user": name}))
        account = self.console.services.users.by_name(name)
        return self.console.show(
            visit, "user.html", person=found, role=account.role, departments=departments, devices=devices.devices, **shown
        )

    async def act_on_person(self, visit: Visit) -> Response:
        """POST /console/users/{name}: deactivate (with handover), reactivate, reissue an invite,
        revoke a device or set the role."""
        name, action = visit.request.path_params["name"], visit.field("action")
        _ = translator(visit.lang)
        if action == "deactivate":
            done = await self.console.call(visit, UserDeactivate.from_fields({"user": name, "handover": visit.field("handover")}))
            return await self.person(visit, done=_("The account is deactivated."), handed_over=done.handed_over)
        if action == "reactivate":
            await self.console.call(visit, UserReactivate.from_fields({"user": name}))
            return await self.person(visit, done=_("The account is active again."))
        if action == "invite":
            issued = await self.console.call(visit, InviteReissue.from_fields({"user": name}))
            return self.console.show(visit, "invite.html", user=issued.user, invite=issued.invite, expires=issued.expires)
        if action == "revoke_device":
            device = optional_number(visit.field("device"), "device")
            await self.console.call(visit, DeviceRevoke.from_fields({"user": name, "device_id": device}))
            return await self.person(visit, done=_("The device is revoked."))
        if action == "role":
            fields = {
                "user": name,
                "role": visit.field("role"),
                "departments": numbers(visit.field("departments"), "departments"),
            }
            await self.console.call(visit, RoleSet.from_fields(fields))
            return await self.person(visit, done=_("The role is set."))
        raise make_error("BAD_MESSAGE", f"unknown action {action!r}")

    async def policies(self, visit: Visit) -> Response:
        """GET /console/policies: the organisation's rules, and the forms to set or remove one."""
        rules = await self.console.call(visit, PolicyList())
        return self.console.show(visit, "policies.html", rules=rules.rules, kinds=POLICY_KINDS)

    async def change_policy(self, visit: Visit) -> Response:
        """POST /console/policies: set or remove a rule."""
        department = optional_number(visit.field("department"), "department")
        if visit.field("action") == "remove":
            await self.console.call(visit, PolicyRemove.from_fields({"kind": visit.field("kind"), "department": department}))
        else:
            subjects = visit.field("subjects").replace(",", " ").split()
            fields = {"kind": visit.field("kind"), "department": department, "subjects": subjects}
            await self.console.call(visit, PolicySet.from_fields(fields))
        return RedirectResponse("/console/policies", 303)

    async def integrations(self, visit: Visit, **shown) -> Response:
        """GET /console/integrations: the organisation's systems that call the API."""
        found = await self.console.call(visit, IntegrationList())
        return self.console.show(visit, "integrations.html", integrations=found.integrations, scopes=SCOPES, **shown)

    async def change_integration(self, visit: Visit) -> Response:
        """POST /console/integrations: add one (its token is shown once), rotate or revoke one."""
        action, name = visit.field("action"), visit.field("name")
        if action == "add":
            rate = optional_number(visit.field("rate_per_minute"), "rate per minute")
            fields = {
                "name": name,
                "display_name": visit.field("display_name"),
                "scopes": [scope for scope in SCOPES if visit.field(f"scope_{scope}")],
                "allow_from": visit.field("allow_from").replace(",", " ").split(),
                **({"rate_per_minute": rate} if rate is not None else {}),
            }
            made = await self.console.call(visit, IntegrationAdd.from_fields(fields))
            return await self.integrations(visit, token=made)
        if action == "rotate":
            return await self.integrations(
                visit, token=await self.console.call(visit, IntegrationRotate.from_fields({"name": name}))
            )
        if action == "revoke":
            await self.console.call(visit, IntegrationRevoke.from_fields({"name": name}))
            return RedirectResponse("/console/integrations", 303)
        raise make_error("BAD_MESSAGE", f"unknown action {action!r}")

    async def admin_log(self, visit: Visit) -> Response:
        """GET /console/admin-log: administrative actions, a page at a time from `after`."""
        after = optional_number(visit.field("after"), "after") or 0
        found = await self.console.call(visit, AdminLog.from_fields({"after": after, "actor": visit.field("actor")}))
        return self.console.show(visit, "admin_log.html", entries=found.entries, more=found.more, actor=visit.field("actor"))

    def routes(self) -> list[Route]:
        """The admin pages' routes."""
        page = self.console.page
        return [
            Route("/status", page(ADMIN, self.status), methods=["GET"]),
            Route("/users", page(PEOPLE_ADMINS, self.people), methods=["GET"]),
            Route("/users", page(PEOPLE_ADMINS, self.add_user), methods=["POST"]),
            Route("/users/{name}", page(PEOPLE_ADMINS, self.person), methods=["GET"]),
            Route("/users/{name}", page(PEOPLE_ADMINS, self.act_on_person), methods=["POST"]),
            Route("/policies", page(ADMIN, self.policies), methods=["GET"]),
            Route("/policies", page(ADMIN, self.change_policy), methods=["POST"]),
            Route("/integrations", page(ADMIN, self.integrations), methods=["GET"]),
            Route("/integrations", page(ADMIN, self.change_integration), methods=["POST"]),
            Route("/admin-log", page((*ADMIN, "auditor"), self.admin_log), methods=["GET"]),
        ]
