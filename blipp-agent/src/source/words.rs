//! Splitting a line into words the way Python's `shlex.split` does (POSIX
//! mode, no comments), which is how the original BLiPP split command lines
//! and NetLogger records. Nothing is expanded: no variables, globs, `~` or
//! command substitution; quotes only group and escape.
//!
//! - Words are separated by spaces, tabs, carriage returns and newlines.
//! - `'...'` keeps everything inside literally.
//! - `"..."` keeps everything literally except that `\"` and `\\` stand for
//!   `"` and `\` (any other backslash stays).
//! - Outside quotes, `\x` stands for `x`.
//! - Quoted and unquoted parts next to each other form one word
//!   (`a"b c"` is `ab c`); `''` is an empty word.

/// Why a line could not be split.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WordsError {
    /// A quote was opened and never closed.
    #[error("unterminated {0} quote")]
    Unterminated(char),
    /// The line ends with a backslash that escapes nothing.
    #[error("a backslash at the end escapes nothing")]
    TrailingBackslash,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between words.
    Space,
    /// Inside an unquoted part of a word.
    Word,
    /// Inside `'...'`.
    Single,
    /// Inside `"..."`.
    Double,
}

/// The words of `line`.
pub fn split(line: &str) -> Result<Vec<String>, WordsError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut state = State::Space;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match state {
            State::Space | State::Word => match c {
                ' ' | '\t' | '\r' | '\n' => {
                    if state == State::Word {
                        words.push(std::mem::take(&mut word));
                        state = State::Space;
                    }
                }
                '\'' => state = State::Single,
                '"' => state = State::Double,
                '\\' => {
                    word.push(chars.next().ok_or(WordsError::TrailingBackslash)?);
                    state = State::Word;
                }
                _ => {
                    word.push(c);
                    state = State::Word;
                }
            },
            State::Single => match c {
                '\'' => state = State::Word,
                _ => word.push(c),
            },
            State::Double => match c {
                '"' => state = State::Word,
                '\\' => match chars.next() {
                    Some(e @ ('"' | '\\')) => word.push(e),
                    Some(other) => {
                        word.push('\\');
                        word.push(other);
                    }
                    None => return Err(WordsError::Unterminated('"')),
                },
                _ => word.push(c),
            },
        }
    }
    match state {
        State::Single => Err(WordsError::Unterminated('\'')),
        State::Double => Err(WordsError::Unterminated('"')),
        State::Word => {
            words.push(word);
            Ok(words)
        }
        State::Space => Ok(words),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(line: &str) -> Vec<String> {
        split(line).unwrap()
    }

    #[test]
    fn like_python_shlex_split() {
        // Each expectation is what Python 3's shlex.split prints.
        assert_eq!(ok("ping -c 1 $address"), ["ping", "-c", "1", "$address"]);
        assert_eq!(ok("  a\tb\n c  "), ["a", "b", "c"]);
        assert_eq!(ok(r#"a "b c" 'd e'"#), ["a", "b c", "d e"]);
        assert_eq!(ok(r#"a"b c"d"#), ["ab cd"]);
        assert_eq!(ok("a '' b"), ["a", "", "b"]);
        assert_eq!(
            ok(r#"'it''s' "x\"y" "\n" '\n'"#),
            ["its", "x\"y", "\\n", "\\n"]
        );
        assert_eq!(ok(r"a\ b \$x \\"), ["a b", "$x", "\\"]);
        assert_eq!(ok("foo #bar"), ["foo", "#bar"]);
        assert_eq!(
            ok("x=$(rm -rf /) `id` *"),
            ["x=$(rm", "-rf", "/)", "`id`", "*"]
        );
        assert_eq!(ok(""), Vec::<String>::new());
        assert_eq!(
            ok("ts=2013-01-01T00:00:00Z event=a.b msg=\"hi there\""),
            ["ts=2013-01-01T00:00:00Z", "event=a.b", "msg=hi there"]
        );
    }

    #[test]
    fn errors() {
        assert_eq!(split("a 'b"), Err(WordsError::Unterminated('\'')));
        assert_eq!(split("a \"b"), Err(WordsError::Unterminated('"')));
        assert_eq!(split("a \"b\\"), Err(WordsError::Unterminated('"')));
        assert_eq!(split("a \\"), Err(WordsError::TrailingBackslash));
    }

    proptest! {
        #[test]
        fn never_panics(line in ".*") {
            let _ = split(&line);
        }

        #[test]
        fn plain_words_round_trip(words in proptest::collection::vec("[a-zA-Z0-9_./=:-]{1,12}", 0..8)) {
            prop_assert_eq!(split(&words.join(" ")).unwrap(), words);
        }

        #[test]
        fn single_quoting_keeps_anything_but_quotes(word in "[^']*") {
            prop_assert_eq!(split(&format!("'{word}'")).unwrap(), vec![word]);
        }
    }
}
