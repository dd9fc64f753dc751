"""A dvhost plugin in Python, built with componentize-py against wit/plugin.wit.

Two actions:

- ``hello`` greets a name: ``{"name": "Ada"}`` -> ``{"greeting": "Hello, Ada!"}``.
- ``count-accounts`` asks the host to count the ``account`` rows (a query with
  ``count`` set) and answers ``{"count": n}``.

The module only sees the host through the imported interfaces: it names a
table and columns, never a URL or a credential.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.actions import (
    ActionError_Failed,
    ActionError_InvalidInput,
    ActionError_UnknownAction,
    ActionInfo,
)
from wit_world.imports import log, records

HELLO_INPUT = {
    "type": "object",
    "properties": {"name": {"type": "string", "minLength": 1}},
    "required": ["name"],
    "additionalProperties": False,
}
HELLO_OUTPUT = {
    "type": "object",
    "properties": {"greeting": {"type": "string"}},
    "required": ["greeting"],
}
COUNT_INPUT = {"type": "object", "additionalProperties": False}
COUNT_OUTPUT = {
    "type": "object",
    "properties": {"count": {"type": "integer", "minimum": 0}},
    "required": ["count"],
}


def _compact(value) -> str:
    """JSON text without spaces, as the other guest languages write it."""
    return json.dumps(value, separators=(",", ":"))


def _parse_object(text: str) -> dict:
    """Parses the action input, which must be a JSON object."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise Err(ActionError_InvalidInput(f"input is not JSON: {error}"))
    if not isinstance(value, dict):
        raise Err(ActionError_InvalidInput("input must be a JSON object"))
    return value


def _hello(value: dict) -> dict:
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise Err(ActionError_InvalidInput("`name` must be a non-empty string"))
    log.write(log.Level.INFO, f"greeting {name}")
    return {"greeting": f"Hello, {name}!"}


def _count_accounts(_value: dict) -> dict:
    # One row per page is enough: Dataverse counts every matching row
    # whatever the page size, so only the count travels.
    options = records.QueryOptions(
        select=["accountid"],
        filter=[],
        order_by=[],
        top=None,
        page_size=1,
        count=True,
        expand=[],
    )
    try:
        with records.query("account", options) as page:
            count = page.count()
    except Err as error:
        raise Err(ActionError_Failed(f"records.query failed: {error.value.message}"))
    if count is None:
        raise Err(ActionError_Failed("the host returned no count"))
    log.write(log.Level.INFO, f"counted {count} accounts")
    return {"count": count}


ACTIONS = {
    "hello": ("Greets a name.", HELLO_INPUT, HELLO_OUTPUT, _hello),
    "count-accounts": (
        "Counts the rows of the account table.",
        COUNT_INPUT,
        COUNT_OUTPUT,
        _count_accounts,
    ),
}


class Actions(exports.Actions):
    """The exported `actions` interface."""

    def describe(self) -> list[ActionInfo]:
        return [
            ActionInfo(
                name=name,
                description=description,
                input_schema=_compact(input_schema),
                output_schema=_compact(output_schema),
            )
            for name, (description, input_schema, output_schema, _) in ACTIONS.items()
        ]

    def invoke(self, name: str, input: str) -> str:
        action = ACTIONS.get(name)
        if action is None:
            raise Err(ActionError_UnknownAction(name))
        return _compact(action[3](_parse_object(input)))
