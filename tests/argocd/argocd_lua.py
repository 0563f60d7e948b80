"""Runs the Argo CD Lua scripts the way Argo CD does, with a real Lua 5.1 runtime (lupa).

Argo CD (util/lua/lua.go) runs each script in a fresh gopher-lua state with only the base,
package and table libraries and a "safe" os module with `time` and `date`, reached only through
`require("os")` (there is no global `os`): no string library (so no
string methods either) and no math. The live object is the global `obj`; the script returns a
table. Argo CD turns that table into JSON, where an empty table becomes `[]`, and for an action
puts back any original map that came out as an empty list (cleanReturnedObj) before computing
the merge patch it sends. Each of those steps is reproduced here, so a script that works here
works there.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

try:
    from lupa import lua51 as lupa_runtime  # gopher-lua follows Lua 5.1 semantics
except ImportError:  # a lupa build without the 5.1 runtime
    import lupa as lupa_runtime  # lupa has no type hints: to mypy both imports are Any

# What a script that fails raises.
LuaError = lupa_runtime.LuaError

ARGOCD = Path(__file__).resolve().parents[2] / "argocd"
HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

# What Argo CD's sandbox leaves of the standard library.
SANDBOX = """
local time, date = os.time, os.date
debug.setmetatable("", nil)  -- no string library means no string methods either
string, math, io, debug, coroutine = nil, nil, nil, nil, nil
package.loaded.string, package.loaded.math, package.loaded.io = nil, nil, nil
package.loaded.debug, package.loaded.coroutine = nil, nil
-- Argo CD registers its safe os (time and date) as a module only: `require("os")`, no global.
package.loaded.os = {time = time, date = date}
os = nil
"""


def _load_render() -> Any:
    """argocd/render.py, which renders each action's script (the one-shot ones from a template)."""
    spec = importlib.util.spec_from_file_location("argocd_render", ARGOCD / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _load_render()


def script(relative: str) -> str:
    return (ARGOCD / relative).read_text()


def _to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, dict):
        table = lua.table()
        for key, item in value.items():
            table[key] = _to_lua(lua, item)
        return table
    if isinstance(value, list):
        table = lua.table()
        for i, item in enumerate(value, start=1):
            table[i] = _to_lua(lua, item)
        return table
    return value


def _from_lua(value: Any) -> Any:
    """As Argo CD's JSON encoding sees it: 1..n keys make a list, an empty table is `[]`."""
    if lupa_runtime.lua_type(value) != "table":
        return value
    keys = list(value.keys())
    if not keys:
        return []
    if all(isinstance(k, int) for k in keys) and sorted(keys) == list(range(1, len(keys) + 1)):
        return [_from_lua(value[i]) for i in range(1, len(keys) + 1)]
    assert all(isinstance(k, str) for k in keys), f"a table mixing key types cannot become JSON: {keys}"
    return {k: _from_lua(value[k]) for k in keys}


def execute(source: str, obj: dict[str, Any]) -> Any:
    """Runs Lua `source` on a copy of `obj` in a fresh sandbox; returns what it returned, as JSON."""
    lua = lupa_runtime.LuaRuntime(register_eval=False, register_builtins=False)
    lua.execute(SANDBOX)
    lua.globals().obj = _to_lua(lua, copy.deepcopy(obj))
    return _from_lua(lua.execute(source))


def run(relative: str, obj: dict[str, Any]) -> Any:
    return execute(script(relative), obj)


def health(obj: dict[str, Any]) -> dict[str, Any]:
    result = run("health.lua", obj)
    assert isinstance(result, dict) and result.get("status") in HEALTH_STATUSES, result
    return result


def enabled_actions(obj: dict[str, Any]) -> set[str]:
    """The actions discovery offers and does not disable (Argo CD: enabled unless disabled=true)."""
    result = run("actions/discovery.lua", obj)
    assert isinstance(result, dict), result
    return {name for name, spec in result.items() if not (isinstance(spec, dict) and spec.get("disabled"))}


def _clean_returned(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """Argo CD's cleanReturnedObj: an original map that came back as an empty list is restored."""
    for key, old_value in old.items():
        if key not in new:
            continue
        new_value = new[key]
        if isinstance(new_value, dict) and isinstance(old_value, dict):
            new[key] = _clean_returned(new_value, old_value)
        elif isinstance(new_value, list):
            if isinstance(old_value, dict) and not new_value:
                new[key] = old_value
            elif isinstance(old_value, list):
                new[key] = _clean_array(new_value, old_value)
    return new


def _clean_array(new: list[Any], old: list[Any]) -> list[Any]:
    for i, new_value in enumerate(new[: len(old)]):
        if isinstance(new_value, dict) and isinstance(old[i], dict):
            new[i] = _clean_returned(new_value, old[i])
        elif isinstance(new_value, list) and isinstance(old[i], list):
            new[i] = _clean_array(new_value, old[i])
    return new


def action(name: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The object as Argo CD would hold it after running action `name` on `obj`."""
    result = execute(render.action_script(name), obj)
    assert isinstance(result, dict), f"action {name} returned {result!r}, not an object"
    return _clean_returned(result, copy.deepcopy(obj))


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) from `old` to `new`, which Argo CD sends for an action."""
    patch: dict[str, Any] = {}
    for key in old.keys() | new.keys():
        if key not in new:
            patch[key] = None
        elif key not in old:
            patch[key] = new[key]
        elif isinstance(old[key], dict) and isinstance(new[key], dict):
            nested = merge_patch(old[key], new[key])
            if nested:
                patch[key] = nested
        elif old[key] != new[key]:
            patch[key] = new[key]
    return patch
