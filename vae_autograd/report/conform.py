"""Whether a parsed results.json follows the schema of report.schema: every problem named by its
path, so a results.json from another version of the study is refused, never half read."""
from types import UnionType
from typing import Literal, Union, get_args, get_origin, get_type_hints

from .schema import Results


def schema_problems(value, kind=Results, where="results"):
    """Every way value (parsed JSON) departs from kind (a type of this module), as lines like
    'results.inference_gaps lacks settings'; an empty list when it conforms."""
    origin, args = get_origin(kind), get_args(kind)
    if kind is None or kind is type(None):
        return [] if value is None else [f"{where} is {type(value).__name__}, not null"]
    if origin in (Union, UnionType):  # X | Y: the alternative it fits best
        return min((schema_problems(value, alternative, where) for alternative in args), key=len)
    if origin is Literal:
        return [] if value in args else [f"{where} is {value!r}, not one of {list(args)}"]
    if isinstance(kind, type) and issubclass(kind, dict) and hasattr(kind, "__annotations__"):  # a TypedDict
        if not isinstance(value, dict):
            return [f"{where} is {type(value).__name__}, not an object"]
        fields = get_type_hints(kind)
        problems = [f"{where} lacks {key}" for key in kind.__required_keys__ if key not in value]
        problems += [f"{where} holds {key}, which the schema does not name" for key in value if key not in fields]
        for key in fields.keys() & value.keys():
            problems += schema_problems(value[key], fields[key], f"{where}.{key}")
        return problems
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where} is {type(value).__name__}, not an object"]
        # Keyed by a Literal, the map holds every one of its keys (the report reads each).
        missing = [f"{where} lacks {key}" for key in get_args(args[0]) if key not in value] \
            if get_origin(args[0]) is Literal else []
        return missing + [p for key, item in value.items() for p in schema_problems(key, args[0], f"{where} key")
                          + schema_problems(item, args[1], f"{where}.{key}")]
    if origin is list:
        if not isinstance(value, list):
            return [f"{where} is {type(value).__name__}, not a list"]
        return [p for i, item in enumerate(value) for p in schema_problems(item, args[0], f"{where}[{i}]")]
    accepted = (int, float) if kind is float else kind  # JSON writes a float such as 10.0 as it is, ints as ints
    if isinstance(value, bool) and kind is not bool or not isinstance(value, accepted):
        return [f"{where} is {type(value).__name__}, not {kind.__name__}"]
    return []


def check_results(results):
    """results (parsed results.json) if it follows the schema, else a ValueError naming the first problems."""
    problems = schema_problems(results)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError("; ".join(problems[:3]) + more)
    return results
