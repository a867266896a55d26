"""YAML for run configs: PyYAML's safe loader, refusing what a config never needs.

- A key given twice in one mapping (`privacy:` twice): PyYAML keeps the last silently, so a
  repeated block could drop stricter thresholds. Refused with both lines.
- Anchors and aliases that expand beyond MAX_NODES values (the "billion laughs" bomb: a
  few hundred bytes that alias lists of aliases expand to billions of values, which
  validating or printing the config would walk). The size is counted on the composed node
  graph, where shared nodes are still shared, so the check itself is cheap. A recursive
  alias is refused too.
"""

from __future__ import annotations

import yaml

from generators.errors import ConfigError

# A run config holds a few hundred values; a hundred thousand is generous for any real one.
MAX_NODES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


def load_yaml(text: str, source: str):
    """The Python value of the YAML document `text` (None when empty).

    Raises ConfigError naming `source` and the line for a duplicate key or an alias
    expansion past MAX_NODES; yaml.YAMLError for malformed YAML, as yaml.safe_load does.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check(node, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check(root: yaml.Node, source: str) -> None:
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            raise ConfigError(
                f"{source}: line {node.start_mark.line + 1}: a recursive YAML alias; "
                "a config cannot refer to itself"
            )
        in_progress.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            _no_duplicate_keys(node, source)
            for key_node, value_node in node.value:
                total += size(key_node) + size(value_node)
                if total > MAX_NODES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item)
                if total > MAX_NODES:
                    break
        if total > MAX_NODES:
            raise ConfigError(
                f"{source}: holds more than {MAX_NODES:,} values (anchors and aliases "
                "expanded); a run config needs far fewer: check for a runaway list or aliases "
                "of aliases"
            )
        in_progress.discard(key)
        sizes[key] = total
        return total

    size(root)


def _no_duplicate_keys(node: yaml.MappingNode, source: str) -> None:
    seen: dict[object, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            continue
        line = key_node.start_mark.line + 1
        if key_node.value in seen:
            raise ConfigError(
                f"{source}: line {line}: key '{key_node.value[:60]}' is given twice (first "
                f"on line {seen[key_node.value]}); YAML would keep only the last: remove one"
            )
        seen[key_node.value] = line
