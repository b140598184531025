"""Config (multialpha/config.py): any YAML document, mutation of the shipped config or environment
override must yield Settings or ConfigError - never a traceback from yaml, pydantic or our own code.

Three generators (>= 10,000 cases together):
- arbitrary small YAML documents through ``config.load`` (file on disk, the real entry point);
- structural mutations of the shipped config's document through load's pipeline after the YAML
  parse (``_expand`` -> ``_apply_overrides`` -> ``validate``): a full ``load`` re-parses 10 KB of YAML
  (~25 ms), so the bulk of the cases skip only that step;
- byte-level mutations of the shipped file's text, and random ``MULTIALPHA__`` overrides, through
  ``config.load`` itself.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import yaml

from multialpha import config
from tests.conftest import SHIPPED_CONFIG
from tests.fuzz.helpers import fuzz, random_json, random_text, seeded

SHIPPED_TEXT = SHIPPED_CONFIG.read_text()
SHIPPED_RAW = yaml.safe_load(SHIPPED_TEXT)
# A fresh copy per case: unpickling is ~5x cheaper than copy.deepcopy of the same document (0.06
# vs 0.28 ms, a sixth of a case's CPU), and gives the same independent tree of plain YAML values.
_SHIPPED_PICKLE = pickle.dumps(SHIPPED_RAW)
ENV = {"MULTIALPHA_RUNTIME_DIR": "/tmp/x", "REDIS_PORT": "6390"}

_TOKENS = [
    "a", "redis", "port", "strategies", "instruments", "ES", ":", ": ", "- ", "\n", "\n  ", "\n    ", "\t", "{", "}",
    "[", "]", ",", "&x ", "*x", "!!str ", "!!int ", "!!binary ", "!!python/object:os.system ", "!!set ", "? ",
    "${REDIS_PORT}", "${NOPE}", "${NOPE:-7}", "${A:-${B}}", "'", '"', "|", ">", "#", "---", "...", "%YAML 1.1\n",
    "1e999", ".nan", "-.inf", "0x1F", "0o17", "~", "null", "yes", "off", "2025-12-01", "12:30:00", "<<: *x", "é",
    "\x00", "\ufeff", "\x85", "9" * 30,
]


def yaml_doc(rng: random.Random) -> str:
    return "".join(rng.choice(_TOKENS) for _ in range(rng.randrange(40)))


def _paths(node, prefix=()):  # every (path, value) in a document
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


_ALL_PATHS = [p for p, _ in _paths(SHIPPED_RAW) if p]


def mutated_raw(rng: random.Random) -> dict:
    doc = pickle.loads(_SHIPPED_PICKLE)
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(_ALL_PATHS)
        parent = doc
        try:
            for k in path[:-1]:
                parent = parent[k]
            key = path[-1]
            how = rng.random()
            if how < 0.2:
                del parent[key]
            elif how < 0.3 and isinstance(parent, dict):
                parent[random_text(rng, 8) or "x"] = random_json(rng)
            elif how < 0.4:
                parent[key] = rng.choice(("${NOPE}", "${REDIS_PORT}", "${NOPE:-}", "${X:-[1, 2]}", "$", "${"))
            else:
                parent[key] = random_json(rng)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation removed or replaced this path
    return doc


def through_pipeline(raw: dict):
    """config.load after yaml.safe_load: expand, env overrides, validate."""
    p = Path("/virtual/config.multi_alpha.yml")
    raw = config._expand(raw, ENV, p, "")
    config._apply_overrides(raw, ENV, p)
    return config.validate(raw, p)


def _is_settings(inp, out) -> None:
    assert isinstance(out, config.Settings)


def test_mutations_of_shipped_config_are_settings_or_config_error():
    counts = fuzz(seeded(mutated_raw), through_pipeline, config.ConfigError, 7_000, _is_settings)
    print(f"\nconfig mutations: {sum(counts.values())} cases, {counts['ok']} Settings, {counts['error']} ConfigError")
    assert sum(counts.values()) >= 7_000 and counts["ok"] > 50 and counts["error"] > 1000


def test_arbitrary_yaml_documents_are_settings_or_config_error(tmp_path):
    path = tmp_path / "c.yml"

    def load(text: str):
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        return config.load(path, environ=ENV)

    counts = fuzz(seeded(yaml_doc), load, config.ConfigError, 3_000, _is_settings)
    print(f"\nYAML documents: {sum(counts.values())} cases, {counts['error']} ConfigError")
    assert sum(counts.values()) >= 3_000 and counts["error"] > 1000


def text_mutation(rng: random.Random) -> tuple[bytes, dict[str, str]]:
    data = bytearray(SHIPPED_TEXT.encode())
    for _ in range(rng.randint(0, 4)):
        i = rng.randrange(len(data))
        how = rng.random()
        if how < 0.4:
            data[i] = rng.randrange(256)
        elif how < 0.7:
            del data[i : i + rng.randrange(1, 40)]
        else:
            data[i:i] = rng.choice(_TOKENS).encode("utf-8", "surrogatepass")
    env = dict(ENV)
    for _ in range(rng.randrange(3)):
        path = rng.choice(_ALL_PATHS)
        name = "MULTIALPHA__" + "__".join(str(k).upper() for k in path[: rng.randint(1, len(path))])
        env[name] = rng.choice(("1", "-1", "x", "", "[1]", "{a: 1}", "true", "1e999", random_text(rng, 10)))
    return bytes(data), env


def test_mutated_config_files_and_overrides_are_settings_or_config_error(tmp_path):
    path = tmp_path / "config.multi_alpha.yml"

    def load(case):
        data, env = case
        path.write_bytes(data)
        return config.load(path, environ=env)

    counts = fuzz(seeded(text_mutation), load, config.ConfigError, 400, _is_settings)
    print(f"\nconfig file mutations: {sum(counts.values())} cases, {counts['ok']} Settings, {counts['error']} ConfigError")
    assert sum(counts.values()) >= 400 and counts["ok"] > 20 and counts["error"] > 20
