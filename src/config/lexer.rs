//! Tokens of the Flussonic configuration language.
//!
//! The language is nginx-like: whitespace-separated words, `;` ends a statement, `{ }`
//! delimit blocks, `#` starts a comment when it begins a token (so URLs such as
//! `http://h/#x` keep their `#`), and strings may be double- or single-quoted with `\`
//! escapes. `key=value` is lexed as one word; a quoted value right after `key=`
//! (`user_agent="VLC 3"`) is joined to it by the lexer so the parser sees one option.

use super::diagnostic::Diagnostic;
use super::source::{FileId, Span};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// An unquoted word (may contain `=`).
    Word(String),
    /// A quoted string, unescaped.
    Quoted(String),
    /// `key="quoted value"`, joined by the lexer.
    KeyQuoted {
        key: String,
        value: String,
    },
    Semicolon,
    OpenBrace,
    CloseBrace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, ';' | '{' | '}' | '"' | '\'')
}

/// Splits `text` into tokens. Fails on the first unterminated string or bad escape:
/// after either of those, everything that follows would be misread.
pub fn tokenize(file: FileId, text: &str) -> Result<Vec<Token>, Diagnostic> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let single = match c {
            ';' => Some(TokenKind::Semicolon),
            '{' => Some(TokenKind::OpenBrace),
            '}' => Some(TokenKind::CloseBrace),
            _ => None,
        };
        if let Some(kind) = single {
            chars.next();
            tokens.push(Token {
                kind,
                span: Span::new(file, start, start + 1),
            });
            continue;
        }
        if c == '#' {
            for (_, c) in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
            continue;
        }
        if c == '"' || c == '\'' {
            let (value, end) = read_quoted(file, text, &mut chars)?;
            tokens.push(Token {
                kind: TokenKind::Quoted(value),
                span: Span::new(file, start, end),
            });
            continue;
        }
        let mut end = start;
        while let Some(&(index, c)) = chars.peek() {
            if is_delimiter(c) {
                break;
            }
            end = index + c.len_utf8();
            chars.next();
        }
        let word = &text[start..end];
        let joins_quote =
            word.ends_with('=') && word.len() > 1 && matches!(chars.peek(), Some(&(_, '"' | '\'')));
        if joins_quote {
            let (value, quote_end) = read_quoted(file, text, &mut chars)?;
            tokens.push(Token {
                kind: TokenKind::KeyQuoted {
                    key: word[..word.len() - 1].to_string(),
                    value,
                },
                span: Span::new(file, start, quote_end),
            });
        } else {
            tokens.push(Token {
                kind: TokenKind::Word(word.to_string()),
                span: Span::new(file, start, end),
            });
        }
    }
    Ok(tokens)
}

/// Reads a quoted string whose opening quote is the next char; returns it unescaped and
/// the byte offset just past the closing quote.
fn read_quoted(
    file: FileId,
    text: &str,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Result<(String, usize), Diagnostic> {
    let (start, quote) = chars.next().expect("caller saw a quote");
    let mut value = String::new();
    while let Some((index, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((value, index + 1)),
            '\\' => match chars.next() {
                Some((_, escaped @ ('"' | '\'' | '\\'))) => value.push(escaped),
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((escape_index, other)) => {
                    return Err(Diagnostic::error(
                        Span::new(file, index, escape_index + other.len_utf8()),
                        format!("unknown escape `\\{other}` in a quoted string"),
                    )
                    .expected("one of \\\" \\' \\\\ \\n \\t"));
                }
                None => break,
            },
            c => value.push(c),
        }
    }
    Err(Diagnostic::error(
        Span::new(file, start, text.len()),
        "this quoted string is never closed",
    )
    .expected(format!("a closing {quote}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        tokenize(FileId(0), text)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn word(s: &str) -> TokenKind {
        TokenKind::Word(s.into())
    }

    #[test]
    fn words_punctuation_and_comments() {
        assert_eq!(
            kinds("http 80 { api false; } # trailing\n# whole line\nrtmp 1935;"),
            vec![
                word("http"),
                word("80"),
                TokenKind::OpenBrace,
                word("api"),
                word("false"),
                TokenKind::Semicolon,
                TokenKind::CloseBrace,
                word("rtmp"),
                word("1935"),
                TokenKind::Semicolon,
            ]
        );
    }

    #[test]
    fn hash_inside_a_word_is_not_a_comment() {
        assert_eq!(
            kinds("input http://h/#x;"),
            vec![word("input"), word("http://h/#x"), TokenKind::Semicolon]
        );
    }

    #[test]
    fn quoted_strings_and_key_quoted_values() {
        assert_eq!(
            kinds(r#"deny ua "Mozilla/5.0 (X; \"y\")" user_agent='VLC 3';"#),
            vec![
                word("deny"),
                word("ua"),
                TokenKind::Quoted("Mozilla/5.0 (X; \"y\")".into()),
                TokenKind::KeyQuoted {
                    key: "user_agent".into(),
                    value: "VLC 3".into()
                },
                TokenKind::Semicolon,
            ]
        );
    }

    #[test]
    fn unterminated_string_is_an_error_at_its_start() {
        let error = tokenize(FileId(0), "title \"never closed;").unwrap_err();
        assert_eq!(error.span.unwrap().start, 6);
        assert!(error.message.contains("never closed"));
    }
}
