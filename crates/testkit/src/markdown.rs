//! Fenced code blocks of Markdown files: the docs' snippets are run or parsed by tests.

/// One fenced block: its language tag, body, and the name a `<!-- command-block: NAME -->` line
/// right above it gives (the README names each block of commands a user types, and the test
/// that runs it reads it by that name).
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub lang: String,
    pub body: String,
    pub name: Option<String>,
}

/// Every fenced block, in order.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = markdown.lines();
    let mut previous = "";
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            let name = previous
                .trim()
                .strip_prefix("<!-- command-block:")
                .and_then(|rest| rest.strip_suffix("-->"))
                .map(|name| name.trim().to_string());
            out.push(Block {
                lang: lang.trim().to_string(),
                body: body.join("\n"),
                name,
            });
            previous = "";
        } else {
            previous = line;
        }
    }
    out
}

/// The body of the block named `name`; panics naming the file's blocks when there is none.
pub fn command_block(markdown: &str, name: &str) -> String {
    let blocks = blocks(markdown);
    let names: Vec<&str> = blocks.iter().filter_map(|b| b.name.as_deref()).collect();
    blocks
        .iter()
        .find(|b| b.name.as_deref() == Some(name))
        .map(|b| b.body.clone())
        .unwrap_or_else(|| panic!("no block named {name}; the named blocks: {names:?}"))
}

/// The README's block named `name`.
pub fn readme_block(name: &str) -> String {
    let path = super::repo_root().join("README.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    command_block(&text, name)
}

/// The bodies of the blocks in `lang`.
pub fn blocks_in(markdown: &str, lang: &str) -> Vec<String> {
    blocks(markdown)
        .into_iter()
        .filter(|b| b.lang == lang)
        .map(|b| b.body)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_blocks_with_their_language() {
        let md = "text\n```bash\nmake test\n```\nmore\n```yaml\na: 1\nb: 2\n```\n";
        assert_eq!(blocks_in(md, "bash"), ["make test"]);
        assert_eq!(blocks(md)[1].body, "a: 1\nb: 2");
    }

    #[test]
    fn a_marker_right_above_a_block_names_it() {
        let md = "<!-- command-block: up -->\n```bash\nmake up\n```\n<!-- command-block: x -->\ntext\n```bash\nmake down\n```\n";
        assert_eq!(blocks(md)[0].name.as_deref(), Some("up"));
        assert_eq!(blocks(md)[1].name, None, "a line between marker and block");
        assert_eq!(command_block(md, "up"), "make up");
    }
}
