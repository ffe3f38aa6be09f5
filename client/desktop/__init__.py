"""The Corridor desktop client (PySide6): org tree, chats, notices and tray, on the same client
library as the CLI. Start it with `corridor desktop`; `app.py` is the place to begin reading."""
