"""Icons drawn at run time (no image files to ship or scale): presence dots, the app icon and
the tray icon with its unread count. Drawn at the screen's device pixel ratio, so they stay
sharp on high-DPI screens."""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QIcon, QPainter, QPixmap

PRESENCE_COLOURS = {
    "online": "#2e9e44",
    "away": "#e0a800",
    "busy": "#d0342c",
    "break": "#7b61c9",
    "offline": "#9a9a9a",
}
ACCENT = "#1f6fb2"


def _pixmap(size: int) -> tuple[QPixmap, QPainter]:
    ratio = QGuiApplication.primaryScreen().devicePixelRatio() if QGuiApplication.primaryScreen() else 1.0
    pixmap = QPixmap(int(size * ratio), int(size * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    return pixmap, painter


@cache
def presence_icon(status: str) -> QIcon:
    """A coloured dot for a status (grey for one this client does not know)."""
    pixmap, painter = _pixmap(12)
    painter.setBrush(QColor(PRESENCE_COLOURS.get(status, PRESENCE_COLOURS["offline"])))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawEllipse(QRectF(1, 1, 10, 10))
    painter.end()
    return QIcon(pixmap)


def app_icon(unread: int = 0) -> QIcon:
    """The Corridor icon: a speech bubble, with a red count when messages are unread."""
    pixmap, painter = _pixmap(32)
    painter.setBrush(QColor(ACCENT))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawRoundedRect(QRectF(2, 4, 26, 20), 6, 6)
    painter.drawPolygon([QPointF(8, 22), QPointF(8, 30), QPointF(15, 22)])
    if unread:
        painter.setBrush(QColor("#d0342c"))
        painter.drawEllipse(QRectF(14, 0, 18, 18))
        painter.setPen(QColor("white"))
        font = QFont()
        font.setPixelSize(11 if unread < 100 else 8)
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(QRectF(14, 0, 18, 18), Qt.AlignmentFlag.AlignCenter, str(unread) if unread < 100 else "99+")
    painter.end()
    return QIcon(pixmap)
