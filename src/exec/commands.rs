//! The two ways a step talks back to the runner: workflow commands printed on stdout/stderr
//! (`::warning file=a.rs,line=3::text`) and file commands written to `GITHUB_OUTPUT`, `GITHUB_ENV`,
//! `GITHUB_STATE` and `GITHUB_PATH`. Parsing follows the runner's rules, including its escapes.

use std::path::Path;

use indexmap::IndexMap;

use super::ExecError;

/// Commands the runner recognises; any other `::name::` line is ordinary output.
const KNOWN: &[&str] = &[
    "add-mask",
    "add-matcher",
    "add-path",
    "debug",
    "echo",
    "endgroup",
    "error",
    "group",
    "notice",
    "remove-matcher",
    "save-state",
    "set-env",
    "set-output",
    "stop-commands",
    "warning",
];

/// One parsed workflow command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowCommand {
    /// The command name, lower-cased (`warning`, `group`, ...).
    pub name: String,
    /// `key=value` properties (keys as written, looked up case-insensitively).
    pub properties: IndexMap<String, String>,
    /// The text after the second `::`, unescaped.
    pub data: String,
}

impl WorkflowCommand {
    /// A property by name, case-insensitively.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Tracks `::stop-commands::TOKEN` across the lines of one step.
#[derive(Debug, Default)]
pub struct CommandParser {
    stop_token: Option<String>,
}

/// What a line of step output turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Plain output.
    Text(String),
    /// A workflow command to act on.
    Command(WorkflowCommand),
    /// `::stop-commands::` was accepted; `token` resumes processing.
    Stopped {
        /// The resume token.
        token: String,
    },
    /// The resume token was seen; commands are processed again.
    Resumed,
    /// `::stop-commands::` with a token the runner refuses (empty or a command name).
    BadStopToken {
        /// The refused token.
        token: String,
    },
}

impl CommandParser {
    /// A parser in the normal (processing) state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Classifies one line of output.
    pub fn parse(&mut self, line: &str) -> Line {
        if let Some(token) = &self.stop_token {
            // While stopped, only `::TOKEN::` is recognised.
            return match parse_command(line, Some(token)) {
                Some(cmd) if cmd.name.eq_ignore_ascii_case(token) => {
                    self.stop_token = None;
                    Line::Resumed
                }
                _ => Line::Text(line.to_string()),
            };
        }
        match parse_command(line, None) {
            Some(cmd) if cmd.name == "stop-commands" => {
                let token = cmd.data;
                let refused = token.is_empty()
                    || token.eq_ignore_ascii_case("pause-logging")
                    || KNOWN.iter().any(|k| k.eq_ignore_ascii_case(&token));
                if refused {
                    Line::BadStopToken { token }
                } else {
                    self.stop_token = Some(token.clone());
                    Line::Stopped { token }
                }
            }
            Some(cmd) => Line::Command(cmd),
            None => Line::Text(line.to_string()),
        }
    }
}

/// Parses `::name props::data` (leading whitespace allowed) or the legacy `##[name props]data`.
/// `extra` is an additional accepted command name (the stop-commands token).
fn parse_command(line: &str, extra: Option<&str>) -> Option<WorkflowCommand> {
    let known = |name: &str| {
        KNOWN.iter().any(|k| k.eq_ignore_ascii_case(name))
            || extra.is_some_and(|e| e.eq_ignore_ascii_case(name))
    };
    if let Some(rest) = line.trim_start().strip_prefix("::") {
        let end = rest.find("::")?;
        return command(&rest[..end], &rest[end + 2..], &MODERN, known);
    }
    // Legacy form: `##[name k=v;k=v]data`, anywhere in the line.
    let start = line.find("##[")?;
    let rest = &line[start + 3..];
    let end = rest.find(']')?;
    command(&rest[..end], &rest[end + 1..], &LEGACY, known)
}

/// What differs between the two command forms: how properties are separated and how values
/// are escaped.
struct Syntax {
    separator: char,
    trim_properties: bool,
    unescape_property: fn(&str) -> String,
    unescape_data: fn(&str) -> String,
}

const MODERN: Syntax = Syntax {
    separator: ',',
    trim_properties: true,
    unescape_property,
    unescape_data,
};

const LEGACY: Syntax = Syntax {
    separator: ';',
    trim_properties: false,
    unescape_property: unescape_legacy,
    unescape_data: unescape_legacy,
};

/// Builds a command from `name props` and its data, if the name is one we know.
fn command(
    info: &str,
    data: &str,
    syntax: &Syntax,
    known: impl Fn(&str) -> bool,
) -> Option<WorkflowCommand> {
    let (name, props) = match info.split_once(' ') {
        Some((name, props)) => (name, Some(props)),
        None => (info, None),
    };
    if !known(name) {
        return None;
    }
    let mut properties = IndexMap::new();
    if let Some(props) = props {
        let props = if syntax.trim_properties {
            props.trim()
        } else {
            props
        };
        for pair in props.split(syntax.separator).filter(|p| !p.is_empty()) {
            if let Some((k, v)) = pair.split_once('=')
                && !k.is_empty()
                && !v.is_empty()
            {
                properties.insert(k.to_string(), (syntax.unescape_property)(v));
            }
        }
    }
    Some(WorkflowCommand {
        name: name.to_ascii_lowercase(),
        properties,
        data: (syntax.unescape_data)(data),
    })
}

/// Applies replacements in order, as the runner does (so `%25` is decoded last).
fn replace_all(text: &str, mappings: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (escaped, plain) in mappings {
        out = out.replace(escaped, plain);
    }
    out
}

/// Unescapes command data: `%0D`, `%0A`, then `%25`.
pub fn unescape_data(text: &str) -> String {
    replace_all(text, &[("%0D", "\r"), ("%0A", "\n"), ("%25", "%")])
}

/// Unescapes a property value: also `%3A` (`:`) and `%2C` (`,`).
pub fn unescape_property(text: &str) -> String {
    replace_all(
        text,
        &[
            ("%0D", "\r"),
            ("%0A", "\n"),
            ("%3A", ":"),
            ("%2C", ","),
            ("%25", "%"),
        ],
    )
}

fn unescape_legacy(text: &str) -> String {
    replace_all(
        text,
        &[
            ("%3B", ";"),
            ("%0D", "\r"),
            ("%0A", "\n"),
            ("%5D", "]"),
            ("%25", "%"),
        ],
    )
}

/// Escapes command data the way `@actions/core` does before printing a command.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value the way `@actions/core` does.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Reads a `NAME=value` / `NAME<<DELIM` file (GITHUB_OUTPUT, GITHUB_ENV, GITHUB_STATE). A missing
/// file yields nothing; a malformed one is an error naming the file.
pub fn read_key_value_file(path: &Path) -> Result<Vec<(String, String)>, ExecError> {
    let text = match std::fs::read(path) {
        // Like .NET's ReadAllText, a UTF-8 byte order mark is not part of the text.
        Ok(bytes) => String::from_utf8_lossy(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes))
            .into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ExecError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    parse_key_value(&text).map_err(|message| ExecError::FileCommand {
        path: path.to_path_buf(),
        message,
    })
}

/// Splits off one line ending in `\n` (the `\n` is not part of the line); `None` at the end.
/// Returns the line and whether it had a terminating newline.
fn next_line<'a>(text: &'a str, index: &mut usize) -> Option<(&'a str, bool)> {
    let rest = text.get(*index..).filter(|r| !r.is_empty())?;
    match rest.find('\n') {
        Some(lf) => {
            *index += lf + 1;
            Some((&rest[..lf], true))
        }
        None => {
            *index = text.len();
            Some((rest, false))
        }
    }
}

/// Parses the contents of a key-value file command.
pub fn parse_key_value(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut index = 0;
    while let Some((line, _)) = next_line(text, &mut index) {
        if line.is_empty() {
            continue;
        }
        let equals = line.find('=');
        let heredoc = line.find("<<");
        match (equals, heredoc) {
            (Some(eq), h) if h.is_none_or(|h| eq < h) => {
                let (key, value) = (&line[..eq], &line[eq + 1..]);
                if key.is_empty() {
                    return Err(format!("Invalid format '{line}'. Name must not be empty"));
                }
                pairs.push((key.to_string(), value.to_string()));
            }
            (_, Some(h)) => {
                let (key, delimiter) = (&line[..h], &line[h + 2..]);
                if key.is_empty() || delimiter.is_empty() {
                    return Err(format!(
                        "Invalid format '{line}'. Name must not be empty and delimiter must not be empty"
                    ));
                }
                let start = index;
                let mut end = index;
                loop {
                    let before = index;
                    match next_line(text, &mut index) {
                        None => {
                            return Err(format!(
                                "Invalid value. Matching delimiter not found '{delimiter}'"
                            ));
                        }
                        Some((l, _)) if l == delimiter => break,
                        Some((_, false)) => {
                            return Err("Invalid value. EOF marker missing new line.".to_string());
                        }
                        Some((l, true)) => end = before + l.len(),
                    }
                }
                let value = if end > start { &text[start..end] } else { "" };
                pairs.push((key.to_string(), value.to_string()));
            }
            _ => return Err(format!("Invalid format '{line}'")),
        }
    }
    Ok(pairs)
}

/// Reads `GITHUB_PATH`: one directory per non-empty line.
pub fn read_path_file(path: &Path) -> Result<Vec<String>, ExecError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes)
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(ExecError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_files() {
        type Case = (
            &'static str,
            Result<Vec<(&'static str, &'static str)>, &'static str>,
        );
        let cases: &[Case] = &[
            ("a=1\nb=2\n", Ok(vec![("a", "1"), ("b", "2")])),
            ("a=x=y", Ok(vec![("a", "x=y")])),
            ("\n\na=\n", Ok(vec![("a", "")])),
            ("m<<EOF\nl1\nl2\nEOF\n", Ok(vec![("m", "l1\nl2")])),
            ("m<<EOF\nEOF\n", Ok(vec![("m", "")])),
            ("m<<EOF\n\nEOF\n", Ok(vec![("m", "")])),
            ("m<<EOF\nx\n\nEOF\n", Ok(vec![("m", "x\n")])),
            ("m<<EOF\nx\nEOF", Ok(vec![("m", "x")])),
            ("k<<=v\nz\n=v\n", Ok(vec![("k", "z")])),
            ("k=a<<b", Ok(vec![("k", "a<<b")])),
            (
                "m<<EOF\nl1\n",
                Err("Invalid value. Matching delimiter not found 'EOF'"),
            ),
            (
                "m<<EOF\nl1",
                Err("Invalid value. EOF marker missing new line."),
            ),
            ("=v", Err("Invalid format '=v'. Name must not be empty")),
            (
                "<<EOF",
                Err(
                    "Invalid format '<<EOF'. Name must not be empty and delimiter must not be empty",
                ),
            ),
            ("novalue", Err("Invalid format 'novalue'")),
            ("a=1\r\nb=2", Ok(vec![("a", "1\r"), ("b", "2")])),
        ];
        for (input, expected) in cases {
            let got = parse_key_value(input);
            let expected = expected.clone().map(|v| {
                v.into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, expected.map_err(str::to_string), "input {input:?}");
        }
    }

    /// The scenarios of the runner's own file-command tests (SetEnvFileCommandL0), re-stated
    /// as behaviour: lines joined with "\n" and no trailing newline, as those tests write them.
    #[test]
    fn agrees_with_the_runners_file_command_scenarios() {
        type Case = (
            &'static str,
            &'static [&'static str],
            Result<&'static [(&'static str, &'static str)], &'static str>,
        );
        let cases: &[Case] = &[
            (
                "Simple",
                &["MY_ENV=MY VALUE"],
                Ok(&[("MY_ENV", "MY VALUE")]),
            ),
            (
                "SkipEmptyLines",
                &["", "MY_ENV=my value", "", "MY_ENV_2=my second value", ""],
                Ok(&[("MY_ENV", "my value"), ("MY_ENV_2", "my second value")]),
            ),
            ("EmptyValue", &["MY_ENV="], Ok(&[("MY_ENV", "")])),
            (
                "MultipleValues",
                &["MY_ENV=my value", "MY_ENV_2=", "MY_ENV_3=my third value"],
                Ok(&[
                    ("MY_ENV", "my value"),
                    ("MY_ENV_2", ""),
                    ("MY_ENV_3", "my third value"),
                ]),
            ),
            (
                "SpecialCharacters",
                &["MY_ENV==abc", "MY_ENV_2=def=ghi", "MY_ENV_3=jkl="],
                Ok(&[
                    ("MY_ENV", "=abc"),
                    ("MY_ENV_2", "def=ghi"),
                    ("MY_ENV_3", "jkl="),
                ]),
            ),
            (
                "Heredoc",
                &["MY_ENV<<EOF", "line one", "line two", "line three", "EOF"],
                Ok(&[("MY_ENV", "line one\nline two\nline three")]),
            ),
            (
                "Heredoc_EmptyValue",
                &["MY_ENV<<EOF", "EOF"],
                Ok(&[("MY_ENV", "")]),
            ),
            (
                "Heredoc_SkipEmptyLines",
                &[
                    "",
                    "MY_ENV<<EOF",
                    "hello",
                    "world",
                    "EOF",
                    "",
                    "MY_ENV_2<<EOF",
                    "HELLO",
                    "AGAIN",
                    "EOF",
                    "",
                ],
                Ok(&[("MY_ENV", "hello\nworld"), ("MY_ENV_2", "HELLO\nAGAIN")]),
            ),
            (
                "Heredoc_SpecialCharacters",
                &[
                    "MY_ENV<<=EOF",
                    "hello",
                    "one",
                    "=EOF",
                    "MY_ENV_2<<<EOF",
                    "hello",
                    "two",
                    "<EOF",
                    "MY_ENV_3<<EOF",
                    "hello",
                    "",
                    "three",
                    "",
                    "EOF",
                    "MY_ENV_4<<EOF",
                    "hello=four",
                    "EOF",
                    "MY_ENV_5<<EOF",
                    " EOF",
                    "EOF",
                ],
                Ok(&[
                    ("MY_ENV", "hello\none"),
                    ("MY_ENV_2", "hello\ntwo"),
                    ("MY_ENV_3", "hello\n\nthree\n"),
                    ("MY_ENV_4", "hello=four"),
                    ("MY_ENV_5", " EOF"),
                ]),
            ),
        ];
        for (name, lines, expected) in cases {
            let got = parse_key_value(&lines.join("\n"));
            let expected = expected
                .map(|pairs| {
                    pairs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<Vec<_>>()
                })
                .map_err(str::to_string);
            assert_eq!(got, expected, "{name}");
        }
        // Lines joined with a space instead of a newline: the runner reports these two errors.
        let joined = ["MY_ENV<<EOF", "line one", "line two", "line three", "EOF"].join(" ");
        assert!(
            parse_key_value(&joined)
                .unwrap_err()
                .contains("Matching delimiter not found")
        );
        let joined = ["MY_ENV<<EOF", "line one\n line two\n line three", "EOF"].join(" ");
        assert!(
            parse_key_value(&joined)
                .unwrap_err()
                .contains("EOF marker missing new line")
        );
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        std::fs::write(&path, b"\xEF\xBB\xBFMY_ENV=v\n").unwrap();
        assert_eq!(
            read_key_value_file(&path).unwrap(),
            vec![("MY_ENV".to_string(), "v".to_string())]
        );
        assert!(
            read_key_value_file(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn workflow_commands() {
        let mut p = CommandParser::new();
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("::warning::hi", "warning", &[], "hi"),
            (
                "  ::error file=a.rs,line=3::bad",
                "error",
                &[("file", "a.rs"), ("line", "3")],
                "bad",
            ),
            (
                "::notice title=a%3Ab%2Cc::x%0Ay%25",
                "notice",
                &[("title", "a:b,c")],
                "x\ny%",
            ),
            ("::group::Build", "group", &[], "Build"),
            ("::ENDGROUP::", "endgroup", &[], ""),
            ("::debug::%250A", "debug", &[], "%0A"),
            (
                "::set-output name=x::1",
                "set-output",
                &[("name", "x")],
                "1",
            ),
            ("##[warning]legacy%5D", "warning", &[], "legacy]"),
            ("::error  file=a,,line=::m", "error", &[("file", "a")], "m"),
        ];
        for (line, name, props, data) in cases {
            let Line::Command(cmd) = p.parse(line) else {
                panic!("not a command: {line}");
            };
            assert_eq!(cmd.name, *name, "{line}");
            let got: Vec<(&str, &str)> = cmd
                .properties
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(got, *props, "{line}");
            assert_eq!(cmd.data, *data, "{line}");
        }
        for text in [
            "::unknown::x",
            "::warning no end",
            "plain",
            "echo ::warning::x",
        ] {
            assert_eq!(p.parse(text), Line::Text(text.to_string()));
        }
    }

    /// The scenarios of the runner's command parser tests (ActionCommandL0), with a known
    /// command name in place of their test-only one.
    #[test]
    fn agrees_with_the_runners_command_parser_scenarios() {
        type Case<'a> = (&'a str, Option<(&'a [(&'a str, &'a str)], &'a str)>);
        let cases: &[Case] = &[
            ("::warning k1=v1,::msg", Some((&[("k1", "v1")], "msg"))),
            ("::warning::", Some((&[], ""))),
            (
                "::warning k1=;=%2C=%0D=%0A=]=%3A,::;-%0D-%0A-]-:-,",
                Some((&[("k1", ";=,=\r=\n=]=:")], ";-\r-\n-]-:-,")),
            ),
            (
                "::warning k1=;=%252C=%250D=%250A=]=%253A,::;-%250D-%250A-]-:-,",
                Some((&[("k1", ";=%2C=%0D=%0A=]=%3A")], ";-%0D-%0A-]-:-,")),
            ),
            ("::warning k1=,k2=,::", Some((&[], ""))),
            ("::warning k1=v1::", Some((&[("k1", "v1")], ""))),
            ("   ::warning k1=v1,::msg", Some((&[("k1", "v1")], "msg"))),
            ("   >>>   ::warning k1=v1,::msg", None),
            ("##[warning k1=v1;]msg", Some((&[("k1", "v1")], "msg"))),
            ("##[warning]", Some((&[], ""))),
            (
                "##[warning k1=%3B=%0D=%0A=%5D;]%3B-%0D-%0A-%5D",
                Some((&[("k1", ";=\r=\n=]")], ";-\r-\n-]")),
            ),
            (
                "##[warning k1=%253B=%250D=%250A=%255D;]%253B-%250D-%250A-%255D",
                Some((&[("k1", "%3B=%0D=%0A=%5D")], "%3B-%0D-%0A-%5D")),
            ),
            ("##[warning k1=;k2=;]", Some((&[], ""))),
            (
                ">>>   ##[warning k1=v1;]msg",
                Some((&[("k1", "v1")], "msg")),
            ),
        ];
        for (line, expected) in cases {
            let got = match CommandParser::new().parse(line) {
                Line::Command(cmd) => Some(cmd),
                _ => None,
            };
            match (got, expected) {
                (None, None) => {}
                (Some(cmd), Some((props, data))) => {
                    let got: Vec<(&str, &str)> = cmd
                        .properties
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    assert_eq!(got, *props, "{line}");
                    assert_eq!(cmd.data, *data, "{line}");
                }
                (got, expected) => panic!("{line}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn stop_commands() {
        let mut p = CommandParser::new();
        assert_eq!(
            p.parse("::stop-commands::tok123"),
            Line::Stopped {
                token: "tok123".into()
            }
        );
        assert_eq!(p.parse("::warning::x"), Line::Text("::warning::x".into()));
        assert_eq!(p.parse("::tok123::"), Line::Resumed);
        assert!(matches!(p.parse("::warning::x"), Line::Command(_)));
        assert_eq!(
            p.parse("::stop-commands::warning"),
            Line::BadStopToken {
                token: "warning".into()
            }
        );
        assert!(matches!(p.parse("::warning::x"), Line::Command(_)));
    }

    #[test]
    fn escape_round_trip() {
        for s in ["a:b,c%d\ne\rf", "%0A", "plain"] {
            assert_eq!(unescape_property(&escape_property(s)), s);
            assert_eq!(unescape_data(&escape_data(s)), s);
        }
    }
}
