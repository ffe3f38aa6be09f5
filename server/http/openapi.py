"""The integration API's OpenAPI 3.1 description, served at `/api/v1/openapi.json` and
committed as `docs/openapi.json` (a test keeps the two the same)."""

from __future__ import annotations

from corridor.protocol.integrations import SCOPES


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_REFUSALS = {
    "400": _error("BAD_MESSAGE: a field is missing, of the wrong type or out of range (the message names it)"),
    "401": _error("LOGIN_FAILED: no token, or an unknown, rotated or revoked one"),
    "403": _error("FORBIDDEN: the address is not in the allowlist, the scope is missing, or policy refuses"),
    "429": _error("RATE_LIMITED: over the integration's rate; `Retry-After` says when to try again"),
    "503": _error("SHUTTING_DOWN, STORAGE_FULL: nothing was stored; retry later with the same Idempotency-Key"),
}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "1-64 characters chosen by the caller: a retry with the same key returns the first result "
    "(200, duplicate true) instead of sending twice. Without it every call sends anew.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 64},
}


def _json(schema: str) -> dict:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _send(summary: str, request: str, result: str, stored: str, what: str) -> dict:
    """A POST that stores something, retry-safe with an Idempotency-Key."""
    return {
        "post": {
            "summary": summary,
            "parameters": [_IDEMPOTENCY],
            "requestBody": {"required": True, "content": _json(request)},
            "responses": {
                "201": {"description": stored, "content": _json(result)},
                "200": {"description": f"A retry with an Idempotency-Key already used: the first {what}'s result"},
                **_REFUSALS,
            },
        }
    }


SPEC: dict = {
    "openapi": "3.1.0",
    "info": {
        "title": "Corridor integration API",
        "version": "1",
        "description": "For the organisation's own systems (OA, HR, monitoring): notices, messages from a bot, "
        "presence and directory lookups. Every call needs an integration token created by an IT admin with "
        "`corridor admin integration add`; each is checked against its scopes ("
        + ", ".join(SCOPES)
        + "), its source-address allowlist and its rate, and is archived with the integration as the actor.",
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/notices": _send(
            "Send a notice to departments and people, or to everyone (scope: notices)",
            "NoticeSend",
            "NoticeSent",
            "Stored durably and archived; online recipients have it already",
            "notice",
        ),
        "/api/v1/notices/batch": {
            "post": {
                "summary": "Send up to 100 notices in one call, each with its own outcome (scope: notices)",
                "description": "Each item is a NoticeSend with an optional `id` (its idempotency key). The batch "
                "counts as one call per item against the rate, and is refused whole (429) if the rate does not "
                "allow them all; otherwise each item succeeds or fails on its own.",
                "requestBody": {"required": True, "content": _json("NoticeBatch")},
                "responses": {
                    "200": {"description": "One result per item, in order", "content": _json("NoticeBatchResults")},
                    **_REFUSALS,
                },
            }
        },
        "/api/v1/messages": _send(
            "Send a 1:1 message from the integration's bot account (scope: messages)",
            "MessageSend",
            "MessageSent",
            "Stored durably and archived",
            "message",
        ),
        "/api/v1/presence": {
            "get": {
                "summary": "Look up people's presence (scope: presence)",
                "parameters": [
                    {
                        "name": "user",
                        "in": "query",
                        "required": True,
                        "description": "a username; repeat for several (at most 1,000)",
                        "schema": {"type": "array", "items": {"type": "string"}},
                        "style": "form",
                        "explode": True,
                    }
                ],
                "responses": {
                    "200": {
                        "description": "Each person's status",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Presence"}}},
                    },
                    **_REFUSALS,
                },
            }
        },
        "/api/v1/directory": {
            "get": {
                "summary": "Look up directory entries by name, pinyin, username, title or department (scope: directory)",
                "parameters": [
                    {
                        "name": "q",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 100},
                    },
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20}},
                ],
                "responses": {
                    "200": {
                        "description": "The people found",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/People"}}},
                    },
                    **_REFUSALS,
                },
            }
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "the integration's token"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string", "description": "a stable code from docs/protocol.md"},
                            "message": {"type": "string"},
                        },
                    }
                },
            },
            "NoticeSend": {
                "type": "object",
                "required": ["title", "text"],
                "description": "Name departments and/or users, or set everyone (not both). Where the bot may "
                "broadcast is the organisation's `broadcast` policy rules.",
                "properties": {
                    "title": {"type": "string", "minLength": 1, "maxLength": 200},
                    "text": {"type": "string", "minLength": 1, "maxLength": 32000},
                    "departments": {"type": "array", "items": {"type": "integer"}, "maxItems": 256},
                    "users": {"type": "array", "items": {"type": "string"}, "maxItems": 1000},
                    "everyone": {"type": "boolean", "default": False},
                },
            },
            "NoticeSent": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "recipients": {"type": "integer"},
                    "duplicate": {"type": "boolean"},
                },
            },
            "NoticeBatch": {
                "type": "object",
                "required": ["notices"],
                "properties": {
                    "notices": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 100,
                        "items": {
                            "allOf": [
                                {"$ref": "#/components/schemas/NoticeSend"},
                                {"properties": {"id": {"type": "string", "minLength": 1, "maxLength": 64}}},
                            ]
                        },
                    }
                },
            },
            "NoticeBatchResults": {
                "type": "object",
                "properties": {
                    "results": {
                        "type": "array",
                        "items": {"oneOf": [{"$ref": "#/components/schemas/NoticeSent"}, {"$ref": "#/components/schemas/Error"}]},
                    }
                },
            },
            "MessageSend": {
                "type": "object",
                "required": ["to", "text"],
                "properties": {
                    "to": {"type": "string", "minLength": 1, "maxLength": 64},
                    "text": {"type": "string", "minLength": 1, "maxLength": 32000},
                    "urgent": {"type": "boolean", "default": False},
                },
            },
            "MessageSent": {
                "type": "object",
                "properties": {
                    "conversation": {"type": "integer"},
                    "seq": {"type": "integer"},
                    "ts": {"type": "number"},
                    "duplicate": {"type": "boolean"},
                    "held": {"type": "boolean", "description": "the recipient is on a break: delivered when it ends"},
                },
            },
            "Presence": {
                "type": "object",
                "properties": {
                    "presence": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "user": {"type": "string"},
                                "status": {"type": "string", "enum": ["online", "away", "busy", "break", "offline"]},
                                "text": {"type": "string"},
                            },
                        },
                    }
                },
            },
            "People": {
                "type": "object",
                "properties": {
                    "people": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "description": "a directory entry, as in docs/protocol.md (Person)",
                            "properties": {
                                "user": {"type": "string"},
                                "display_name": {"type": "string"},
                                "title": {"type": "string"},
                                "departments": {"type": "array", "items": {"type": "integer"}},
                                "email": {"type": "string"},
                                "phone": {"type": "string"},
                                "extension": {"type": "string"},
                                "employee_no": {"type": "string"},
                                "manager": {"type": "string"},
                                "active": {"type": "boolean"},
                            },
                        },
                    }
                },
            },
        },
    },
}
