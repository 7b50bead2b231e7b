//! The untyped syntax tree: statements with arguments and optional blocks.
//!
//! Grammar (the spec's reconstructed EBNF):
//!
//! ```text
//! config    := { statement }
//! statement := NAME { arg } ( ";" | "{" { statement } "}" [";"] )
//! arg       := WORD | QUOTED | KEY "=" VALUE
//! ```
//!
//! This layer knows nothing about directive names; [`super::schema`] gives the tree its
//! meaning. Parsing is bounded: nesting depth is capped so a hostile file cannot exhaust the
//! stack, and the caller caps the file size before the text reaches the lexer.

use super::diagnostic::Diagnostic;
use super::lexer::{Token, TokenKind, tokenize};
use super::source::{FileId, Span};

/// Deepest block nesting accepted. Real configs nest two levels (`balancer { server … }`,
/// `http 80 { api false; }`); 16 leaves room for anything sane and keeps recursion shallow.
pub const MAX_BLOCK_DEPTH: usize = 16;

/// One argument of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgValue {
    /// A positional word or quoted string.
    Positional(String),
    /// `key=value`.
    Option { key: String, value: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub value: ArgValue,
    /// True when the operator quoted it (a quoted `key=value` stays positional).
    pub quoted: bool,
    pub span: Span,
}

/// `name arg… ;` or `name arg… { statements }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub name: String,
    pub name_span: Span,
    pub args: Vec<Arg>,
    pub block: Option<Vec<Statement>>,
    /// From the name to the `;` or the closing `}`.
    pub span: Span,
}

/// An option key is an identifier; anything else with a `=` in it (a URL query string,
/// `a==b`) stays a positional word.
pub fn is_option_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn arg_from_token(token: Token) -> Arg {
    let (value, quoted) = match token.kind {
        TokenKind::Word(word) => match word.split_once('=') {
            Some((key, value)) if is_option_key(key) => (
                ArgValue::Option {
                    key: key.to_string(),
                    value: value.to_string(),
                },
                false,
            ),
            _ => (ArgValue::Positional(word), false),
        },
        TokenKind::Quoted(text) => (ArgValue::Positional(text), true),
        TokenKind::KeyQuoted { key, value } => (ArgValue::Option { key, value }, true),
        TokenKind::Semicolon | TokenKind::OpenBrace | TokenKind::CloseBrace => {
            unreachable!("punctuation is never an argument")
        }
    };
    Arg {
        value,
        quoted,
        span: token.span,
    }
}

struct Parser {
    tokens: std::iter::Peekable<std::vec::IntoIter<Token>>,
    end_of_file: Span,
}

impl Parser {
    /// Statements up to the end of the file (`open` is `None`) or up to the `}` that closes
    /// the block opened at `open`; returns them with the span of that `}`.
    fn statements(
        &mut self,
        depth: usize,
        open: Option<Span>,
    ) -> Result<(Vec<Statement>, Span), Diagnostic> {
        let mut statements = Vec::new();
        loop {
            let Some(token) = self.tokens.next() else {
                return match open {
                    None => Ok((statements, self.end_of_file)),
                    Some(open) => Err(Diagnostic::error(open, "this block is never closed")
                        .expected("a `}` before the end of the file")),
                };
            };
            match token.kind {
                TokenKind::CloseBrace => match open {
                    Some(_) => return Ok((statements, token.span)),
                    None => {
                        return Err(Diagnostic::error(token.span, "unexpected `}`")
                            .expected("a directive name; this `}` closes no block"));
                    }
                },
                TokenKind::Word(name) => statements.push(self.statement(name, token.span, depth)?),
                TokenKind::Semicolon => {
                    return Err(Diagnostic::error(token.span, "unexpected `;`")
                        .expected("a directive name before the `;`"));
                }
                TokenKind::OpenBrace => {
                    return Err(Diagnostic::error(token.span, "unexpected `{`")
                        .expected("a directive name before the block"));
                }
                TokenKind::Quoted(_) | TokenKind::KeyQuoted { .. } => {
                    return Err(
                        Diagnostic::error(token.span, "a directive name cannot be quoted")
                            .expected("an unquoted directive name"),
                    );
                }
            }
        }
    }

    fn statement(
        &mut self,
        name: String,
        name_span: Span,
        depth: usize,
    ) -> Result<Statement, Diagnostic> {
        let mut args = Vec::new();
        loop {
            let Some(token) = self.tokens.next() else {
                return Err(Diagnostic::error(
                    name_span,
                    format!("directive `{name}` is not terminated"),
                )
                .expected("`;` or a `{ … }` block after its arguments"));
            };
            match token.kind {
                TokenKind::Semicolon => {
                    return Ok(Statement {
                        span: name_span.to(token.span),
                        name,
                        name_span,
                        args,
                        block: None,
                    });
                }
                TokenKind::OpenBrace => {
                    if depth + 1 > MAX_BLOCK_DEPTH {
                        return Err(Diagnostic::error(
                            token.span,
                            format!("blocks nest deeper than {MAX_BLOCK_DEPTH} levels"),
                        )
                        .expected("a flatter configuration"));
                    }
                    let (block, close) = self.statements(depth + 1, Some(token.span))?;
                    // `};` is tolerated: some hand-written configs end blocks that way.
                    if matches!(self.tokens.peek(), Some(t) if t.kind == TokenKind::Semicolon) {
                        self.tokens.next();
                    }
                    return Ok(Statement {
                        span: name_span.to(close),
                        name,
                        name_span,
                        args,
                        block: Some(block),
                    });
                }
                TokenKind::CloseBrace => {
                    return Err(Diagnostic::error(
                        name_span,
                        format!("directive `{name}` is not terminated"),
                    )
                    .expected("`;` before the `}`"));
                }
                _ => args.push(arg_from_token(token)),
            }
        }
    }
}

/// Parses one file's text into statements.
pub fn parse(file: FileId, text: &str) -> Result<Vec<Statement>, Diagnostic> {
    let tokens = tokenize(file, text)?;
    let mut parser = Parser {
        tokens: tokens.into_iter().peekable(),
        end_of_file: Span::new(file, text.len(), text.len()),
    };
    parser.statements(0, None).map(|(statements, _)| statements)
}

impl Statement {
    /// Positional arguments in order.
    pub fn positionals(&self) -> impl Iterator<Item = (&str, &Arg)> {
        self.args.iter().filter_map(|arg| match &arg.value {
            ArgValue::Positional(text) => Some((text.as_str(), arg)),
            ArgValue::Option { .. } => None,
        })
    }

    /// `key=value` options in order.
    pub fn options(&self) -> impl Iterator<Item = (&str, &str, &Arg)> {
        self.args.iter().filter_map(|arg| match &arg.value {
            ArgValue::Option { key, value } => Some((key.as_str(), value.as_str(), arg)),
            ArgValue::Positional(_) => None,
        })
    }

    /// Where a missing argument should have been: just after the name.
    pub fn after_name(&self) -> Span {
        Span {
            file: self.name_span.file,
            start: self.name_span.end,
            end: self.name_span.end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Vec<Statement> {
        parse(FileId(0), text).unwrap()
    }

    #[test]
    fn nested_blocks_and_options() {
        let statements = parse_ok(
            "balancer global { mode clients; server p1 max_bitrate=60M countries=RU,CN; };\nhttp 80;",
        );
        assert_eq!(statements.len(), 2);
        let balancer = &statements[0];
        assert_eq!(balancer.name, "balancer");
        let block = balancer.block.as_ref().unwrap();
        assert_eq!(block[1].name, "server");
        let options: Vec<_> = block[1].options().map(|(k, v, _)| (k, v)).collect();
        assert_eq!(
            options,
            vec![("max_bitrate", "60M"), ("countries", "RU,CN")]
        );
    }

    #[test]
    fn urls_with_query_strings_stay_positional() {
        let statements = parse_ok("input tshttp://h/x?a=b priority=2;");
        let positionals: Vec<_> = statements[0].positionals().map(|(p, _)| p).collect();
        assert_eq!(positionals, vec!["tshttp://h/x?a=b"]);
        assert_eq!(statements[0].options().count(), 1);
    }

    #[test]
    fn unclosed_block_points_at_its_brace() {
        let error = parse(FileId(0), "stream a {\n input x;\n").unwrap_err();
        assert!(error.message.contains("never closed"));
        assert_eq!(error.span.unwrap().start, 9);
    }

    #[test]
    fn missing_semicolon_names_the_directive() {
        let error = parse(FileId(0), "stream a { input x }").unwrap_err();
        assert!(error.message.contains("`input`"), "{}", error.message);
    }

    #[test]
    fn stray_close_brace_is_reported() {
        assert!(
            parse(FileId(0), "}")
                .unwrap_err()
                .message
                .contains("unexpected `}`")
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = "a {".repeat(100_000);
        let error = parse(FileId(0), &text).unwrap_err();
        assert!(error.message.contains("nest deeper"));
    }
}
