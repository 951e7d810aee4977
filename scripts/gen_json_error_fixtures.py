#!/usr/bin/env python3
"""Where malformed JSON goes wrong, by Python's json module (an outside reference for the
line/column that src/io/json.ts reports): test/fixtures/io/json_errors.json holds
[text, line, column] for each case. Standard library only:
    python3 scripts/gen_json_error_fixtures.py
"""
import json
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'io', 'json_errors.json')

CASES = [
    '', ' ', '{', '[', '{"a"', '{"a":', '{"a": 1', '{"a": 1,', '{"a": 1,}', '[1,]', '[1 2]', '{"a" 1}',
    '{"a": tru}', 'nul', '"abc', '"a\\x"', '"\\u12G4"', '01', '-', '1.', '1.e5', '1e', '1e+', '[1] x', '{} {}',
    '{\n  "hidden_size": 64,\n  "SECRET-KEY": [1, 2,, 3]\n}', '{"a":\n\n   [true, false, nul]}',
    '{"a": "line\nbreak"}', '{"a": "tab\there"}', '{1: 2}', '[1, 2', '{"a": {"b": {"c": [1, 2, 3}}}',
    '\n\n\n   }', '{"a": -}', '{"a": .5}', '{"a": +1}', "{'a': 1}", '{"a": 1e5.3}', '[0x10]', '["\\uD800"] ]',
]

out = []
for text in CASES:
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        out.append([text, e.lineno, e.colno])
        continue
    raise SystemExit(f'valid JSON in the error cases: {text!r}')

with open(OUT, 'w') as f:
    json.dump(out, f, indent=1)
    f.write('\n')
print(f'{len(out)} cases -> {OUT}')
