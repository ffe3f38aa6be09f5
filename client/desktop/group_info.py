"""A group's information: its name, announcement, welcome message, owner, admins and members."""

from __future__ import annotations

import datetime as dt

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QListWidget, QVBoxLayout

from corridor.protocol.messages import GroupInfo

from .icons import presence_icon


class GroupInfoDialog(QDialog):
    """Read-only view of a group (changes are made with `corridor group`)."""

    def __init__(self, info: GroupInfo, names: dict[str, str], status: dict[str, str], parent=None):
        super().__init__(parent)
        self.setObjectName("group_info_dialog")
        self.setWindowTitle(self.tr("Group: %s") % info.name)
        form = QFormLayout()
        form.addRow(self.tr("Name"), QLabel(info.name))
        announcement = info.announcement or self.tr("(none)")
        if info.announcement:
            when = dt.datetime.fromtimestamp(info.announcement_ts).strftime("%Y-%m-%d %H:%M")
            announcement += f"\n— {names.get(info.announcement_by, info.announcement_by)}, {when}"
        self.announcement = QLabel(announcement)
        self.announcement.setObjectName("announcement")
        self.announcement.setWordWrap(True)
        form.addRow(self.tr("Announcement"), self.announcement)
        if info.welcome:
            form.addRow(self.tr("Welcome"), QLabel(info.welcome))
        form.addRow(self.tr("Owner"), QLabel(names.get(info.owner, info.owner)))
        self.members = QListWidget()
        self.members.setObjectName("members")
        for user in info.members:
            role = self.tr(" (owner)") if user == info.owner else self.tr(" (admin)") if user in info.admins else ""
            self.members.addItem(names.get(user, user) + role)
            self.members.item(self.members.count() - 1).setIcon(presence_icon(status.get(user, "offline")))
        form.addRow(self.tr("Members (%d)") % len(info.members), self.members)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
