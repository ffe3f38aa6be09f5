"""Connection-level requests: `hello` (version negotiation) and `ping` (keep-alive); and, on
the NATS bus, this process's part in the cluster of serve processes (`cluster.py`)."""

from corridor.protocol.messages import Empty, Hello, HelloResult, Ping
from corridor.protocol.versions import SUPPORTED_VERSIONS, negotiate

from ...services import Services
from ...sessions import ANONYMOUS, LOCAL_ADMIN, MEMBERS, Session
from ..base import Feature, Route

SERVER_NAME = "corridor/0.1"


def feature(services: Services) -> Feature:
    """hello is open to everyone; ping needs a login (nothing but hello/login/enroll before one)."""
    ca_pem = services.config.path(services.config.tls.ca).read_text()

    async def hello(session: Session, msg: Hello) -> HelloResult:
        version = negotiate(SUPPORTED_VERSIONS, msg.versions)
        return HelloResult(version=version, server=SERVER_NAME, org=services.config.organisation.name, ca=ca_pem)

    async def ping(session: Session, msg: Ping) -> Empty:
        return Empty()

    async def take_part() -> None:
        await services.sessions.cluster.run(services.config.instance)

    return Feature(
        name="session",
        actions={"session.hello": frozenset({ANONYMOUS}), "session.ping": MEMBERS | {LOCAL_ADMIN}},
        routes=(Route(Hello, hello, "session.hello"), Route(Ping, ping, "session.ping")),
        # On the local bus there is nobody to tell: what the cluster publishes stays here.
        tasks=(take_part,) if services.config.bus.backend == "nats" else (),
    )
