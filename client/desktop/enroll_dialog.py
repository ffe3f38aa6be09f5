"""First run: find the company's server on the LAN, paste the invite, choose a password.

The invite (from IT) is what makes enrollment safe: it carries a one-time token and the
fingerprint of the organisation's CA, which the client pins. Servers found by mDNS are only a
convenience — picking one connects there instead of the invite's address (useful when the
invite names a host this PC cannot resolve), and it must still prove to be the invite's host
with the invite's CA. A server whose announced CA matches the invite is marked as such."""

from __future__ import annotations

import socket

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
)

from corridor.protocol.errors import CorridorError
from corridor.protocol.invites import parse_invite

from ..discovery import DiscoveredServer, discover
from ..enrollment import enroll
from ..profile import Profile
from .guest import Tasks

SERVER = Qt.ItemDataRole.UserRole
DISCOVERY_SECONDS = 2.0


class EnrollDialog(QDialog):
    """Enrolls a profile; `enrolled` is emitted (and the dialog accepted) when it worked."""

    enrolled = Signal(object)  # LoginResult

    def __init__(self, profile: Profile, tasks: Tasks, interfaces: list[str] | None = None, parent=None):
        super().__init__(parent)
        self.setObjectName("enroll_dialog")
        self.profile, self.tasks, self.interfaces = profile, tasks, interfaces
        self.setWindowTitle(self.tr("Welcome to Corridor"))

        intro = QLabel(self.tr("Paste the invite your IT department sent you, then choose your password."))
        intro.setWordWrap(True)
        self.servers = QListWidget()
        self.servers.setObjectName("servers")
        self.servers.setMaximumHeight(110)
        self.refresh = QPushButton(self.tr("Look again"))
        self.refresh.clicked.connect(self.find_servers)
        self.invite = QLineEdit()
        self.invite.setObjectName("invite")
        self.invite.setPlaceholderText("corridor://…/enroll?token=…&ca=sha256:…")
        self.invite.textChanged.connect(self._mark_matches)
        self.password = QLineEdit(echoMode=QLineEdit.EchoMode.Password)
        self.password.setObjectName("password")
        self.again = QLineEdit(echoMode=QLineEdit.EchoMode.Password)
        self.again.setObjectName("password_again")
        self.device = QLineEdit(socket.gethostname())
        self.device.setObjectName("device_name")
        self.message = QLabel()
        self.message.setObjectName("enroll_message")
        self.message.setWordWrap(True)

        form = QFormLayout()
        form.addRow(self.tr("Servers on this network"), self.servers)
        form.addRow("", self.refresh)
        form.addRow(self.tr("Invite"), self.invite)
        form.addRow(self.tr("New password"), self.password)
        form.addRow(self.tr("Password again"), self.again)
        form.addRow(self.tr("This computer's name"), self.device)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText(self.tr("Enroll"))
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.find_servers()

    def find_servers(self) -> None:
        """Browse the LAN for Corridor servers (a couple of seconds, in the background)."""
        self.refresh.setEnabled(False)
        self.tasks.start(self._find)

    async def _find(self) -> None:
        try:
            found = await discover(DISCOVERY_SECONDS, interfaces=self.interfaces)
        finally:
            self.refresh.setEnabled(True)
        self.servers.clear()
        for server in found:
            item = QListWidgetItem(f"{server.org} — {server.addresses[0] if server.addresses else server.host}:{server.port}")
            item.setData(SERVER, server)
            self.servers.addItem(item)
        if not found:
            self.servers.addItem(self.tr("(none found — the invite's address will be used)"))
        self._mark_matches()

    def _mark_matches(self) -> None:
        try:
            fingerprint = parse_invite(self.invite.text().strip()).ca_sha256
        except CorridorError:
            return
        for row in range(self.servers.count()):
            item = self.servers.item(row)
            server: DiscoveredServer | None = item.data(SERVER)
            if server is not None and server.ca_sha256 == fingerprint:
                item.setText(f"{item.text().split('  ✓')[0]}  ✓ " + self.tr("matches the invite"))
                if self.servers.currentItem() is None:
                    self.servers.setCurrentItem(item)

    def _address(self) -> tuple[str, int] | None:
        item = self.servers.currentItem()
        server: DiscoveredServer | None = item.data(SERVER) if item is not None else None
        if server is None or not server.addresses:
            return None
        return server.addresses[0], server.port

    def submit(self) -> None:
        """Check the form and enroll in the background."""
        invite = self.invite.text().strip()
        try:
            parse_invite(invite)
        except CorridorError as exc:
            self.message.setText(exc.message)
            return
        if self.password.text() != self.again.text():
            self.message.setText(self.tr("The two passwords differ."))
            return
        self.buttons.setEnabled(False)
        self.message.setText(self.tr("Enrolling…"))
        self.tasks.start(self._enroll, invite, self.password.text(), self.device.text().strip() or socket.gethostname())

    async def _enroll(self, invite: str, password: str, device: str) -> None:
        try:
            result = await enroll(self.profile, invite, password, device, address=self._address())
        except CorridorError as exc:
            self.message.setText(exc.message)
            self.buttons.setEnabled(True)
            return
        self.enrolled.emit(result)
        self.accept()
