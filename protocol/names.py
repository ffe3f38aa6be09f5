"""What a username may be: the one rule for accounts made by hand, by import and by LDAP sync."""

import re

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
USERNAME_RULE = "a username is 1-64 of a-z, 0-9, '.', '_', '-' and starts with a letter or digit"
