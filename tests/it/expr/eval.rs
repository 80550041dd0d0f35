//! One row per case: expression → expected value (as JSON), evaluated against `CONTEXTS`.

use super::eval;

/// (expression, expected value as JSON). Numbers that must print a certain way are checked
/// through `format('{0}', ...)` (string conversion) or `toJSON`.
const CASES: &[(&str, &str)] = &[
    // Literals (an empty expression is null)
    (r#""#, r#"null"#),
    (r#"  "#, r#"null"#),
    (r#"null"#, r#"null"#),
    (r#"true"#, r#"true"#),
    (r#"false"#, r#"false"#),
    (r#"1"#, r#"1"#),
    (r#"-1.5"#, r#"-1.5"#),
    (r#".5"#, r#"0.5"#),
    (r#"5."#, r#"5"#),
    (r#"1e3"#, r#"1000"#),
    (r#"1E-2"#, r#"0.01"#),
    (r#"+7"#, r#"7"#),
    (r#"0x1F"#, r#"31"#),
    (r#"0xff"#, r#"255"#),
    (r#"0xFFFFFFFF"#, r#"-1"#),
    (r#"0o17"#, r#"15"#),
    (r#"''"#, r#""""#),
    (r#"'abc'"#, r#""abc""#),
    // Escapes: only '' inside single quotes
    (r#"'it''s'"#, r#""it's""#),
    (r#"'a''b''c'"#, r#""a'b'c""#),
    (r#"''''"#, r#""'""#),
    (r#"'line1\nline2'"#, r#""line1\\nline2""#),
    (r#"'{{ x }}'"#, r#""{{ x }}""#),
    (r#"'${{ x }}'"#, r#""${{ x }}""#),
    (r#"format('{0}''s', 'Mona')"#, r#""Mona's""#),
    // Number → string (.NET G15)
    (r#"format('{0}', 1e15)"#, r#""1E+15""#),
    (r#"format('{0}', 1e14)"#, r#""100000000000000""#),
    (r#"format('{0}', 1e-7)"#, r#""1E-07""#),
    (r#"format('{0}', 0.0001)"#, r#""0.0001""#),
    (r#"format('{0}', 0.00001)"#, r#""1E-05""#),
    (r#"format('{0}', 1.5)"#, r#""1.5""#),
    (r#"format('{0}', 3.0)"#, r#""3""#),
    (r#"format('{0}', 0.1)"#, r#""0.1""#),
    (
        r#"format('{0}', 123456789.123456789)"#,
        r#""123456789.123457""#,
    ),
    (
        r#"format('{0}', 1.23456789012345678e20)"#,
        r#""1.23456789012346E+20""#,
    ),
    (r#"format('{0}', -2.5e-10)"#, r#""-2.5E-10""#),
    (r#"format('{0}', NaN)"#, r#""NaN""#),
    (r#"format('{0}', Infinity)"#, r#""Infinity""#),
    (r#"format('{0}', -Infinity)"#, r#""-Infinity""#),
    (r#"format('{0}', -0)"#, r#""0""#),
    (r#"format('{0}', 0x10)"#, r#""16""#),
    // G15, as the runner: not JavaScript's shortest round trip (1e+21, 3.141592653589793)
    (r#"format('{0}', 1e21)"#, r#""1E+21""#),
    (
        r#"format('{0}', 3.141592653589793)"#,
        r#""3.14159265358979""#,
    ),
    (
        r#"format('{0}', 1.2345678901234568e+29)"#,
        r#""1.23456789012346E+29""#,
    ),
    (r#"toJSON(3.141592653589793)"#, r#""3.14159265358979""#),
    (r#"toJSON(fromJSON('[1e21]'))"#, r#""[\n  1E+21\n]""#),
    // The keywords NaN and Infinity, and signed Infinity read as a number
    (r#"toJSON(Infinity)"#, r#""Infinity""#),
    (r#"toJSON(-Infinity)"#, r#""-Infinity""#),
    (r#"format('{0}', +Infinity)"#, r#""Infinity""#),
    (r#"-Infinity < -1e308"#, r#"true"#),
    (r#"Infinity == 1e309"#, r#"true"#),
    (r#"NaN == 'NaN'"#, r#"false"#),
    // Other values → string
    (
        r#"format('{0}|{1}|{2}', null, true, false)"#,
        r#""|true|false""#,
    ),
    (r#"format('{0}', nums)"#, r#""Array""#),
    (r#"format('{0}', objs)"#, r#""Object""#),
    (r#"format('{0}', github.event.commits.*.id)"#, r#""Array""#),
    // String → number (through loose equality)
    (r#"'' == 0"#, r#"true"#),
    (r#"'  ' == 0"#, r#"true"#),
    (r#"' 42 ' == 42"#, r#"true"#),
    (r#"'0x10' == 16"#, r#"true"#),
    (r#"'0X10' == 16"#, r#"false"#),
    (r#"'0o17' == 15"#, r#"true"#),
    (r#"'0O17' == 15"#, r#"false"#),
    (r#"'0b1' == 1"#, r#"false"#),
    (r#"'0xFFFFFFFF' == -1"#, r#"true"#),
    (r#"'0x100000000' == 4294967296"#, r#"false"#),
    (r#"'1e3' == 1000"#, r#"true"#),
    (r#"'.5' == 0.5"#, r#"true"#),
    (r#"'1.' == 1"#, r#"true"#),
    (r#"'1,000' == 1000"#, r#"false"#),
    (r#"'abc' == 0"#, r#"false"#),
    (r#"'Infinity' == Infinity"#, r#"true"#),
    (r#"'-Infinity' == -Infinity"#, r#"true"#),
    (r#"env.NUM == 42"#, r#"true"#),
    (r#"env.HEX == 16"#, r#"true"#),
    (r#"env.ZERO == false"#, r#"true"#),
    (r#"true == 1"#, r#"true"#),
    (r#"true == '1'"#, r#"true"#),
    (r#"null == 0"#, r#"true"#),
    (r#"null == ''"#, r#"true"#),
    (r#"null == false"#, r#"true"#),
    (r#"NaN == NaN"#, r#"false"#),
    (r#"NaN != NaN"#, r#"true"#),
    // Boolean conversion (truthiness)
    (r#"!!'0'"#, r#"true"#),
    (r#"!!'false'"#, r#"true"#),
    (r#"!!0"#, r#"false"#),
    (r#"!!-0"#, r#"false"#),
    (r#"!!NaN"#, r#"false"#),
    (r#"!!''"#, r#"false"#),
    (r#"!!null"#, r#"false"#),
    (r#"!!fromJSON('[]')"#, r#"true"#),
    (r#"!!fromJSON('{}')"#, r#"true"#),
    (r#"!!env.EMPTY"#, r#"false"#),
    // Case-insensitive comparison and names
    (r#"'abc' == 'ABC'"#, r#"true"#),
    (r#"'é' == 'É'"#, r#"true"#),
    (r#"'ß' == 'SS'"#, r#"false"#),
    (r#"'Straße' == 'STRASSE'"#, r#"false"#),
    (r#"'a' < 'B'"#, r#"true"#),
    (r#"'_' > 'a'"#, r#"true"#),
    (r#"'Z' < 'a'"#, r#"false"#),
    (r#"'abc' <= 'ABC'"#, r#"true"#),
    (r#"GITHUB.EVENT_NAME"#, r#""push""#),
    (r#"github.EVENT.Number"#, r#"42"#),
    (r#"env.NAME"#, r#""Value""#),
    (r#"ENV.NAME"#, r#""Value""#),
    (r#"CONTAINS('abc', 'B')"#, r#"true"#),
    (r#"toJson(1)"#, r#""1""#),
    (r#"FromJSON('true')"#, r#"true"#),
    (r#"fromJSON('{"Key": 1}').key"#, r#"1"#),
    // contains
    (r#"contains('Hello World', 'WORLD')"#, r#"true"#),
    (r#"contains('abc', '')"#, r#"true"#),
    (r#"contains('', 'a')"#, r#"false"#),
    (r#"contains(nums, 1)"#, r#"true"#),
    (r#"contains(nums, '1')"#, r#"true"#),
    (r#"contains(nums, 4)"#, r#"false"#),
    (r#"contains(matrix.flags, 'A')"#, r#"true"#),
    (r#"contains(fromJSON('[]'), null)"#, r#"false"#),
    (r#"contains(fromJSON('[null]'), null)"#, r#"true"#),
    (
        r#"contains(fromJSON('[[1]]'), fromJSON('[1]'))"#,
        r#"false"#,
    ),
    (r#"contains(objs, 'x')"#, r#"false"#),
    (r#"contains(null, '')"#, r#"true"#),
    (r#"contains(123, 2)"#, r#"true"#),
    (r#"contains(true, 'RU')"#, r#"true"#),
    (r#"contains('abc', nums)"#, r#"false"#),
    (
        r#"contains(github.event.commits.*.author.name, 'mona')"#,
        r#"true"#,
    ),
    // startsWith / endsWith
    (r#"startsWith('Hello', 'he')"#, r#"true"#),
    (r#"startsWith('Hello', '')"#, r#"true"#),
    (r#"startsWith('he', 'hello')"#, r#"false"#),
    (r#"startsWith(123, 12)"#, r#"true"#),
    (r#"startsWith(true, 'T')"#, r#"true"#),
    (r#"startsWith(nums, 3)"#, r#"false"#),
    (r#"startsWith('abc', nums)"#, r#"false"#),
    (r#"endsWith('Hello', 'LO')"#, r#"true"#),
    (r#"endsWith(github.ref, 'MAIN')"#, r#"true"#),
    (r#"endsWith(1.5, '.5')"#, r#"true"#),
    (r#"endsWith(null, '')"#, r#"true"#),
    (r#"endsWith('lo', 'hello')"#, r#"false"#),
    // format
    (r#"format('Hello {0}', 'World')"#, r#""Hello World""#),
    (r#"format('{0}{0}', 'a')"#, r#""aa""#),
    (r#"format('{{0}}', 'a')"#, r#""{0}""#),
    (r#"format('{{{0}}}', 'a')"#, r#""{a}""#),
    (r#"format('}}{{')"#, r#""}{""#),
    (r#"format('{1}-{0}', 'a', 'b')"#, r#""b-a""#),
    (r#"format('{00}', 'a')"#, r#""a""#),
    (r#"format('x')"#, r#""x""#),
    (r#"format('{0}', 'a', 'b')"#, r#""a""#),
    (r#"format(1.5)"#, r#""1.5""#),
    (r#"format('{0:}', 'a')"#, r#""a""#),
    // join
    (r#"join(nums)"#, r#""3,1,2""#),
    (r#"join(nums, ' + ')"#, r#""3 + 1 + 2""#),
    (r#"join(matrix.flags, '')"#, r#""ab""#),
    (r#"join('abc')"#, r#""abc""#),
    (r#"join(null)"#, r#""""#),
    (r#"join(1.5)"#, r#""1.5""#),
    (r#"join(objs)"#, r#""""#),
    (r#"join(fromJSON('[]'))"#, r#""""#),
    (r#"join(fromJSON('[1]'), nums)"#, r#""1""#),
    (r#"join(fromJSON('[1,2]'), nums)"#, r#""1,2""#),
    (r#"join(fromJSON('[1,2]'), null)"#, r#""12""#),
    (
        r#"join(fromJSON('[null, true, [], {}]'))"#,
        r#"",true,Array,Object""#,
    ),
    (r#"join(github.event.commits.*.id, '-')"#, r#""a1-b2""#),
    // toJSON
    (r#"toJSON(nums)"#, r#""[\n  3,\n  1,\n  2\n]""#),
    (r#"toJSON(objs.x)"#, r#""{\n  \"y\": 1\n}""#),
    (
        r#"toJSON(objs)"#,
        r#""{\n  \"x\": {\n    \"y\": 1\n  },\n  \"z\": {\n    \"y\": 2\n  },\n  \"w\": 5\n}""#,
    ),
    (r#"toJSON('a"b\c')"#, r#""\"a\\\"b\\\\c\"""#),
    (r#"toJSON(null)"#, r#""null""#),
    (r#"toJSON(true)"#, r#""true""#),
    (r#"toJSON(1e15)"#, r#""1E+15""#),
    (r#"toJSON(1.5)"#, r#""1.5""#),
    (r#"toJSON(fromJSON('[]'))"#, r#""[]""#),
    (r#"toJSON(fromJSON('{}'))"#, r#""{}""#),
    (
        r#"toJSON(fromJSON('{"b":1,"a":2}'))"#,
        r#""{\n  \"b\": 1,\n  \"a\": 2\n}""#,
    ),
    (r#"toJSON(fromJSON('[[],{}]'))"#, r#""[\n  [],\n  {}\n]""#),
    (r#"toJSON(matrix.flags.*)"#, r#""[\n  \"a\",\n  \"b\"\n]""#),
    (
        r#"toJSON(fromJSON('"a\nb\u0001"'))"#,
        r#""\"a\\nb\\u0001\"""#,
    ),
    (r#"toJSON(objs.*.y)"#, r#""[\n  1,\n  2\n]""#),
    // fromJSON
    (r#"fromJSON('{"a": {"b": [1, 2]}}').a.b[1]"#, r#"2"#),
    (r#"fromJSON('1e3')"#, r#"1000"#),
    (r#"fromJSON('"x"')"#, r#""x""#),
    (r#"fromJSON('null')"#, r#"null"#),
    (r#"fromJSON('[1, "a", null]')"#, r#"[1, "a", null]"#),
    (r#"fromJSON(' 42 ')"#, r#"42"#),
    // Of keys differing only in case the first is kept with its value (the runner's strict
    // parser; its older Newtonsoft path kept the last value).
    (r#"fromJSON('{"A":1,"a":2}')"#, r#"{"A": 1}"#),
    (r#"fromJSON('{"a":1,"A":2,"a":3}').A"#, r#"1"#),
    (r#"fromJSON('{"x":{"K":[1],"k":[2]}}').x.k[0]"#, r#"1"#),
    (r#"fromJSON(toJSON(objs)).z.y"#, r#"2"#),
    // case
    (r#"case(true, 'a', 'b')"#, r#""a""#),
    (r#"case(false, 'a', 'b')"#, r#""b""#),
    (r#"case(false, 1, true, 2, 3)"#, r#"2"#),
    (r#"case(1 == 2, 'x', 'y')"#, r#""y""#),
    // hashFiles (through the host) and status functions
    (r#"hashFiles('**/*.lock')"#, r#""hash[**/*.lock]""#),
    (r#"hashFiles('a', 1, true, null)"#, r#""hash[a|1|true|]""#),
    (r#"success()"#, r#"true"#),
    (r#"always()"#, r#"true"#),
    (r#"failure()"#, r#"false"#),
    (r#"cancelled()"#, r#"false"#),
    // Precedence and short-circuit results
    (r#"!true == false"#, r#"true"#),
    (r#"!(true == false)"#, r#"true"#),
    (r#"1 == 1 && 2 == 3 || 4 == 4"#, r#"true"#),
    (r#"true || false && false"#, r#"true"#),
    (r#"(true || false) && false"#, r#"false"#),
    (r#"1 < 2 == true"#, r#"true"#),
    (r#"2 > 1 > 0"#, r#"true"#),
    (r#"3 > 2 > 1"#, r#"false"#),
    (r#"1 == 1 == 1"#, r#"true"#),
    (r#"'a' == 'A' != false"#, r#"true"#),
    (r#"null || 'default'"#, r#""default""#),
    (r#"'' || 0 || null"#, r#"null"#),
    (r#"'x' && 'y'"#, r#""y""#),
    (r#"0 && 'y'"#, r#"0"#),
    (r#"!nums.length"#, r#"true"#),
    (
        r#"github.event.number == 42 && github.event.draft == false"#,
        r#"true"#,
    ),
    (
        r#"!github.event.draft && github.event_name == 'push' && 'yes' || 'no'"#,
        r#""yes""#,
    ),
    // Property access, indexes and filters
    (
        r#"github.event.commits.*.author.name"#,
        r#"["Mona", "Lisa"]"#,
    ),
    (r#"github.event.commits[1].id"#, r#""b2""#),
    (r#"github.event.commits['1'].id"#, r#""b2""#),
    (r#"github.event.commits[1.9].id"#, r#""b2""#),
    (r#"github.event.commits[-1]"#, r#"null"#),
    (r#"github.event.commits[2]"#, r#"null"#),
    (r#"github.event.commits[true].id"#, r#""b2""#),
    (r#"github.event.commits[null].id"#, r#""a1""#),
    (r#"nums[0]"#, r#"3"#),
    (r#"nums['x']"#, r#"null"#),
    (r#"objs.*.y"#, r#"[1, 2]"#),
    (r#"objs.*"#, r#"[{"y": 1}, {"y": 2}, 5]"#),
    (r#"objs[*].y"#, r#"[1, 2]"#),
    (r#"nums.*"#, r#"[3, 1, 2]"#),
    (r#"github.sha.*"#, r#"[]"#),
    (r#"env.NAME.*"#, r#"[]"#),
    (r#"github.event.labels.*"#, r#"[]"#),
    (r#"github.event.commits.*[0]"#, r#"[]"#),
    (r#"github.event.commits.*.author.name[0]"#, r#"[]"#),
    (r#"fromJSON('[[1,2],[3]]').*[0]"#, r#"[1, 3]"#),
    (r#"fromJSON('[[1,2],[3]]').*.*"#, r#"[1, 2, 3]"#),
    (
        r#"fromJSON('[{"a":[1,2]},{"a":[3]}]').*.a.*"#,
        r#"[1, 2, 3]"#,
    ),
    (r#"objs['x'].y"#, r#"1"#),
    (r#"objs.X.Y"#, r#"1"#),
    (r#"objs[1]"#, r#"null"#),
    (r#"fromJSON('{"1": "one"}')[1]"#, r#""one""#),
    (r#"fromJSON('{"1.5": "x"}')[1.5]"#, r#""x""#),
    (r#"fromJSON('{"": "empty"}')[null]"#, r#""empty""#),
    (r#"objs[nums]"#, r#"null"#),
    (r#"github.nope.deeper"#, r#"null"#),
    (r#"github['event']['number']"#, r#"42"#),
    (r#"steps.build.outputs.result"#, r#""ok""#),
    (r#"matrix.os"#, r#""ubuntu-latest""#),
    (r#"(matrix).os"#, r#""ubuntu-latest""#),
    (r#"(nums)[1]"#, r#"1"#),
    (r#"('abc')[0]"#, r#"null"#),
    (r#"github.event.true"#, r#"null"#),
    // Object identity: the same context value is equal to itself, computed ones never are
    (r#"objs.x == objs.x"#, r#"true"#),
    (r#"objs.x == objs['X']"#, r#"true"#),
    (r#"nums == nums"#, r#"true"#),
    (r#"nums >= nums"#, r#"true"#),
    (r#"objs.x == objs.z"#, r#"false"#),
    (r#"fromJSON('{}') == fromJSON('{}')"#, r#"false"#),
    (r#"objs.*.y == objs.*.y"#, r#"false"#),
    (r#"objs.x == 'Object'"#, r#"false"#),
    // 10^5 characters stay under the memory limit.
    (
        "endsWith(format('{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}', format('{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}', format('{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}', format('{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}', 'abcdefghij')))), 'jabcdefghij')",
        r#"true"#,
    ),
    // Whitespace is free between tokens, including before '('
    (" contains ( 'abc' , 'b' ) ", r#"true"#),
    ("1\t==\n1", r#"true"#),
];

#[test]
fn evaluation_table() {
    let mut failures = Vec::new();
    for (source, expected) in CASES {
        let expected: serde_json::Value =
            serde_json::from_str(expected).unwrap_or_else(|e| panic!("bad row {source}: {e}"));
        match eval(source) {
            Ok(v) if v.to_json() == expected => {}
            Ok(v) => failures.push(format!("{source}: got {}, want {expected}", v.to_json())),
            Err(e) => failures.push(format!("{source}: {e}, want {expected}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// (expression, part of the evaluation error message).
const EVAL_ERRORS: &[(&str, &str)] = &[
    ("unknown.x", "Unrecognized named-value: 'unknown'"),
    ("github.x || Nope", "Unrecognized named-value: 'Nope'"),
    // Unknown names are errors even where short-circuiting would skip them, as in the runner.
    (
        "true || unknown_context",
        "Unrecognized named-value: 'unknown_context'",
    ),
    (
        "false && unknown_context",
        "Unrecognized named-value: 'unknown_context'",
    ),
    (
        "format('{0}')",
        "references more arguments than were supplied: {0}",
    ),
    (
        "format('{2}', 1, 2)",
        "references more arguments than were supplied",
    ),
    ("format('{')", "format string is invalid: {"),
    ("format('}')", "format string is invalid: }"),
    ("format('{}', 1)", "format string is invalid"),
    ("format('{a}', 1)", "format string is invalid"),
    ("format('{0 }', 1)", "format string is invalid"),
    ("format('{-1}', 1)", "format string is invalid"),
    ("format('{256}', 1)", "format string is invalid"),
    ("format('{0,5}', 1)", "format string is invalid"),
    ("format('{0', 1)", "format string is invalid"),
    (
        "format('{0:D2}', 1)",
        "format specifiers 'D2' are not valid for objects of type 'Number'",
    ),
    (
        "format('{0:x}', nums)",
        "not valid for objects of type 'Array'",
    ),
    ("fromJSON('')", "Error parsing fromJson"),
    ("fromJSON('{')", "Error parsing fromJson"),
    ("fromJSON('nope')", "Error parsing fromJson"),
    // Exactly one value: text after it is an error (the runner's strict parser).
    (
        "fromJSON('1 2')",
        "Error parsing fromJson: trailing characters",
    ),
    (
        "fromJSON('[1] x')",
        "Error parsing fromJson: trailing characters",
    ),
    (
        "fromJSON('{} {}')",
        "Error parsing fromJson: trailing characters",
    ),
    (
        "case(1, 'a', 'b')",
        "case predicate must evaluate to a boolean value",
    ),
    (
        "case(false, 'a', 'yes', 'b', 'c')",
        "case predicate must evaluate to a boolean value",
    ),
    ("hashFiles('fail')", "hashFiles failed on purpose"),
    // 10^6 characters are 2 MB of UTF-16: over the runner's 1 MiB evaluation limit.
    (
        "format('{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}', format('{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}', format('{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}', format('{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}', format('{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}', 'abcdefghij')))))",
        "The maximum allowed memory size was exceeded while evaluating the following expression: format(",
    ),
];

#[test]
fn evaluation_errors() {
    for (source, want) in EVAL_ERRORS {
        match eval(source) {
            Err(e) => assert!(
                e.starts_with("eval: ") && e.contains(want),
                "{source}: got {e}, want {want}"
            ),
            Ok(v) => panic!("{source}: evaluated to {v:?}, want error {want}"),
        }
    }
}

#[test]
fn unknown_context_error_points_at_the_name() {
    let expr = runner::expr::parse("github.event && nope.y").expect("parses");
    let err = runner::expr::evaluate(&expr, &super::TestHost::new()).expect_err("nope is unknown");
    match err {
        runner::expr::EvalError::UnknownContext { name, span } => {
            assert_eq!(name, "nope");
            assert_eq!((span.start, span.end), (16, 20));
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// The runner keeps `env` case-sensitive except on Windows; other contexts never are.
#[test]
fn env_property_names_are_case_sensitive_outside_windows() {
    let name = eval("env.name").expect("evaluates");
    let indexed = eval("env['name']").expect("evaluates");
    let want = if cfg!(windows) {
        runner::expr::Value::String("Value".into())
    } else {
        runner::expr::Value::Null
    };
    assert_eq!(name, want);
    assert_eq!(indexed, want);
    assert_eq!(
        eval("github.EVENT_NAME").expect("evaluates"),
        runner::expr::Value::String("push".into())
    );
}
