//! The documentation cannot rot: its links resolve, the flags it names are
//! perfaudit's, the findings reference covers every code the source can
//! emit, the JSON examples conform to the schemas, the README's commands are
//! those CI runs, and the man pages in docs/man/ are what the clap
//! definitions render today.
//!
//! When the man pages differ, rerun with `PERFAUDIT_UPDATE_DOCS=1 cargo test
//! --test docs`, which rewrites them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use regex::Regex;
use serde_json::Value;

/// Flags of other programs that the docs show in their commands (cargo's,
/// pg_config's), which `perfaudit --help` rightly does not know. A flag of
/// perfaudit's spelled like one of these would go unchecked: keep it short.
const OTHER_PROGRAMS_FLAGS: &[&str] = &[
    // cargo install / build / clippy / test
    "--all-targets",
    "--check",
    "--locked",
    "--path",
    "--release",
    "--test",
    // pg_config (how --scratch finds the server binaries)
    "--bindir",
];

/// perfaudit's own flags that the docs need not name: every command has them.
const UNDOCUMENTED_FLAGS: &[&str] = &["--help", "--version"];

/// The finding codes perfaudit emits. The test also reads them from the
/// source (the string literals given to findings' `code` fields) and from
/// the JSON snapshots; this list makes sure that reading still finds them
/// all, should the source change how it spells a finding.
const KNOWN_CODES: &[&str] = &[
    // explain (src/explain/findings/)
    "selective-seq-scan",
    "index-filter-discards",
    "index-cond-non-leading",
    "nested-loop-inner-loops",
    "row-misestimate",
    "sort-spill",
    "hash-spill",
    "lossy-bitmap",
    "function-time",
    "jit-dominates",
    "disk-reads-dominate",
    "planning-exceeds-execution",
    // indexes (and --audit)
    "duplicate-index",
    "redundant-index",
    "invalid-index",
    "unused-index",
    "unindexed-foreign-key",
    "index-bloat",
    "index-larger-than-table",
];

/// The variable that rewrites docs/man/ instead of failing.
const UPDATE: &str = "PERFAUDIT_UPDATE_DOCS";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `path` relative to the repository, for messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The files under `dir` (recursively) whose name satisfies `wanted`.
fn files_under(dir: &Path, wanted: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path, wanted));
        } else if wanted(&path) {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn is_markdown(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "md")
}

/// The user's documentation: README.md and docs/**/*.md.
fn user_docs() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    files.extend(files_under(&root().join("docs"), &is_markdown));
    files
}

/// Every Markdown file whose links must resolve: the user's documentation,
/// BENCHMARKS.md and the fixtures' READMEs.
fn linked_docs() -> Vec<PathBuf> {
    let mut files = user_docs();
    files.push(root().join("BENCHMARKS.md"));
    files.extend(files_under(&root().join("fixtures"), &|p: &Path| {
        p.file_name().is_some_and(|n| n == "README.md")
    }));
    files
}

/// A Markdown file's lines outside fenced code blocks, with their numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            lines.push((number + 1, line));
        }
    }
    lines
}

/// The fenced code blocks of a Markdown file: info string, text, and the
/// `##` heading of the section they are in.
fn code_blocks(text: &str) -> Vec<(String, String, String)> {
    let mut blocks = Vec::new();
    let mut heading = String::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match open.as_mut() {
            Some(_) if trimmed.starts_with("```") => {
                let (info, body) = open.take().unwrap();
                blocks.push((info, body, heading.clone()));
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None if trimmed.starts_with("```") => {
                open = Some((
                    trimmed.trim_start_matches('`').trim().to_owned(),
                    String::new(),
                ));
            }
            // A section's blocks are under its `##` heading, whatever
            // subsections it has.
            None if line.starts_with("## ") => {
                if let Some(text) = heading_text(line) {
                    heading = text;
                }
            }
            None => {}
        }
    }
    blocks
}

/// The text of an ATX heading line (`## Title ##`), if it is one.
fn heading_text(line: &str) -> Option<String> {
    let hashes = line.len() - line.trim_start_matches('#').len();
    if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
        return None;
    }
    Some(
        line[hashes..]
            .trim()
            .trim_end_matches('#')
            .trim()
            .to_owned(),
    )
}

/// A heading's anchor as GitHub makes it: lower case, punctuation other
/// than `-` and `_` dropped, spaces turned into `-`; a link's text stands
/// for the link.
fn slug(heading: &str) -> String {
    let link = Regex::new(r"\[([^\]]*)\]\([^)]*\)").unwrap();
    link.replace_all(heading, "$1")
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings, duplicates numbered as
/// GitHub numbers them (`name`, `name-1`, ...).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let Some(heading) = heading_text(line) else {
            continue;
        };
        let slug = slug(&heading);
        let count = seen.entry(slug.clone()).or_insert(0);
        anchors.insert(match *count {
            0 => slug,
            n => format!("{slug}-{n}"),
        });
        *count += 1;
    }
    anchors
}

/// The inline links `[text](target)` of a Markdown file outside code, with
/// their line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    let code_span = Regex::new(r"`[^`]*`").unwrap();
    let link = Regex::new(r#"\]\(([^)\s]+)(?:\s+"[^"]*")?\)"#).unwrap();
    let mut found = Vec::new();
    for (number, line) in prose_lines(text) {
        // Code spans become plain text first: a link's text may be one, and
        // what looks like a link inside one is not.
        let line = code_span.replace_all(line, "code");
        for capture in link.captures_iter(&line) {
            found.push((number, capture[1].to_owned()));
        }
    }
    found
}

/// `path` with `.` and `..` resolved, without touching the file system.
fn normalized(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn every_relative_link_resolves_to_a_file_and_heading() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in linked_docs() {
        let text = read(&file);
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                normalized(&file.parent().unwrap().join(path))
            };
            let at = format!("{}:{line}: {target}", shown(&file));
            if !resolved.starts_with(root()) || !resolved.exists() {
                broken.push(format!("{at}: no such file {}", shown(&resolved)));
                continue;
            }
            if let Some(anchor) = anchor {
                if !is_markdown(&resolved) {
                    broken.push(format!("{at}: an anchor into a file that is not Markdown"));
                } else if !anchors(&read(&resolved)).contains(anchor) {
                    broken.push(format!(
                        "{at}: {} has no heading whose anchor is #{anchor}",
                        shown(&resolved)
                    ));
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} relative links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The paths of docs/ that Rust sources name in their comments (`see
/// docs/robustness.md`) exist.
#[test]
fn the_docs_sources_point_at_exist() {
    let mention = Regex::new(r"docs/[A-Za-z0-9_./-]*[A-Za-z0-9_]\.(md|json)").unwrap();
    let mut missing = Vec::new();
    let rust = |p: &Path| p.extension().is_some_and(|e| e == "rs");
    for dir in ["src", "tests", "benches"] {
        for file in files_under(&root().join(dir), &rust) {
            for found in mention.find_iter(&read(&file)) {
                if !root().join(found.as_str()).exists() {
                    missing.push(format!("{}: {}", shown(&file), found.as_str()));
                }
            }
        }
    }
    assert!(missing.is_empty(), "no such file:\n{}", missing.join("\n"));
}

/// The long flags in `text`.
fn flags(text: &str) -> BTreeSet<String> {
    let flag = Regex::new(r"(?:^|[^A-Za-z0-9_-])(--[a-z][a-z0-9]*(?:-[a-z0-9]+)*)").unwrap();
    flag.captures_iter(text)
        .map(|capture| capture[1].to_owned())
        .collect()
}

/// Every long flag `perfaudit --help` and each command's `--help` show.
fn help_flags() -> BTreeSet<String> {
    let mut runs: Vec<Vec<String>> = vec![vec![]];
    for command in perfaudit::cli::Cli::command().get_subcommands() {
        runs.push(vec![command.get_name().to_owned()]);
    }
    let mut found = BTreeSet::new();
    for args in runs {
        let output = Command::new(env!("CARGO_BIN_EXE_perfaudit"))
            .args(&args)
            .arg("--help")
            .env("COLUMNS", "100")
            .output()
            .expect("run perfaudit --help");
        assert!(output.status.success(), "perfaudit {args:?} --help failed");
        found.extend(flags(&String::from_utf8(output.stdout).unwrap()));
    }
    found
}

#[test]
fn every_flag_the_docs_name_is_perfaudits_and_every_flag_is_documented() {
    let help = help_flags();
    assert!(
        help.contains("--format") && help.contains("--analyze-writes"),
        "{help:?}"
    );
    let mut unknown = Vec::new();
    let mut documented = BTreeSet::new();
    for file in user_docs() {
        for (number, line) in read(&file).lines().enumerate() {
            for flag in flags(line) {
                if OTHER_PROGRAMS_FLAGS.contains(&flag.as_str()) {
                    continue;
                }
                if !help.contains(&flag) {
                    unknown.push(format!("{}:{}: {flag}", shown(&file), number + 1));
                }
                documented.insert(flag);
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "flags that no --help of perfaudit shows (a flag of another program goes in \
         OTHER_PROGRAMS_FLAGS):\n{}",
        unknown.join("\n")
    );
    let undocumented: Vec<&String> = help
        .iter()
        .filter(|f| !documented.contains(*f) && !UNDOCUMENTED_FLAGS.contains(&f.as_str()))
        .collect();
    assert!(
        undocumented.is_empty(),
        "flags of perfaudit that neither the README nor docs/ name: {undocumented:?}"
    );
}

/// The finding codes the source gives findings (`code: "..."`).
fn codes_in_source() -> BTreeSet<String> {
    let rust = |p: &Path| p.extension().is_some_and(|e| e == "rs");
    codes(r#"\bcode:\s*"([a-z][a-z0-9-]*)""#, "src", &rust)
}

/// The finding codes in the JSON documents the snapshots hold.
fn codes_in_snapshots() -> BTreeSet<String> {
    let snapshot = |p: &Path| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("json_output__"))
    };
    codes(
        r#""code": "([a-z][a-z0-9-]*)""#,
        "tests/snapshots",
        &snapshot,
    )
}

/// What `pattern`'s first group matches in the files under `dir` that
/// `wanted` takes.
fn codes(pattern: &str, dir: &str, wanted: &dyn Fn(&Path) -> bool) -> BTreeSet<String> {
    let code = Regex::new(pattern).unwrap();
    files_under(&root().join(dir), wanted)
        .iter()
        .flat_map(|file| {
            code.captures_iter(&read(file))
                .map(|c| c[1].to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The finding codes a command's schema allows.
fn codes_in_schema(command: &str) -> BTreeSet<String> {
    let schema: Value = serde_json::from_str(&read(
        &root().join(format!("docs/json/{command}.schema.json")),
    ))
    .unwrap();
    schema["$defs"]["finding"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{command}.schema.json has no finding code enum"))
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_findings_reference_has_a_section_for_every_code() {
    let in_source = codes_in_source();
    let known: BTreeSet<String> = KNOWN_CODES.iter().map(|c| c.to_string()).collect();
    let unseen: Vec<&String> = known.difference(&in_source).collect();
    assert!(
        unseen.is_empty(),
        "codes not found in src/ as `code: \"...\"`: {unseen:?}. If the source now spells \
         findings differently, teach codes_in_source() to read it; if a finding is gone, \
         take it out of KNOWN_CODES, docs/findings.md and the schemas"
    );
    let mut codes = in_source;
    codes.extend(codes_in_snapshots());
    codes.extend(known);

    let reference = root().join("docs/findings.md");
    let text = read(&reference);
    let sections: BTreeSet<String> = prose_lines(&text)
        .into_iter()
        .filter(|(_, line)| line.starts_with("## "))
        .filter_map(|(_, line)| {
            let title = line[3..].trim();
            title
                .strip_prefix('`')
                .and_then(|t| t.strip_suffix('`'))
                .map(str::to_owned)
        })
        .collect();
    let missing: Vec<&String> = codes.difference(&sections).collect();
    assert!(
        missing.is_empty(),
        "docs/findings.md has no section headed ## `<code>` for {missing:?}"
    );
    let stale: Vec<&String> = sections.difference(&codes).collect();
    assert!(
        stale.is_empty(),
        "docs/findings.md documents codes perfaudit does not emit: {stale:?}"
    );

    let mut in_schemas = codes_in_schema("explain");
    in_schemas.extend(codes_in_schema("indexes"));
    let outside: Vec<&String> = codes.difference(&in_schemas).collect();
    assert!(
        outside.is_empty(),
        "codes the schemas in docs/json/ do not allow: {outside:?}"
    );
}

/// Every complete JSON example in docs/json.md (a ```json block; an
/// abbreviated one is ```jsonc) conforms to the schema of the command
/// whose section it is in.
#[test]
fn the_json_examples_conform_to_the_schemas() {
    let text = read(&root().join("docs/json.md"));
    let mut checked = BTreeSet::new();
    for (info, body, heading) in code_blocks(&text) {
        if info != "json" {
            continue;
        }
        let command = heading.trim_matches('`');
        let path = root().join(format!("docs/json/{command}.schema.json"));
        assert!(
            path.exists(),
            "a json block under \"{heading}\", which names no command"
        );
        let schema: Value = serde_json::from_str(&read(&path)).unwrap();
        let validator = jsonschema::draft202012::new(&schema).unwrap();
        let example: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("the {command} example is not JSON ({e}):\n{body}"));
        let errors: Vec<String> = validator
            .iter_errors(&example)
            .map(|e| format!("at {}: {e}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "the {command} example in docs/json.md does not conform to its schema:\n{}",
            errors.join("\n")
        );
        checked.insert(command.to_owned());
    }
    assert_eq!(
        checked,
        BTreeSet::from([
            "advise".to_owned(),
            "explain".to_owned(),
            "indexes".to_owned(),
            "rewrite".to_owned()
        ])
    );
}

/// What the README tells a newcomer to install and run is what CI
/// installs and runs.
#[test]
fn the_readmes_prerequisites_and_commands_are_what_ci_runs() {
    let readme = read(&root().join("README.md"));
    let ci = read(&root().join(".ci/run"));
    let ci_lines: BTreeSet<&str> = ci.lines().map(str::trim).collect();

    let check = readme
        .lines()
        .find(|line| line.starts_with("cargo fmt --check"))
        .expect("the README's build and test commands");
    for part in check.split(" && ") {
        assert!(
            ci_lines.contains(part.trim()),
            "the README runs `{part}`, which .ci/run does not"
        );
    }
    assert!(ci_lines.contains("cargo test --locked"));

    let install = Regex::new(r"`apt-get install ([^`]+)`").unwrap();
    let wanted: BTreeSet<String> = install
        .captures(&readme)
        .expect("the README's prerequisite line")[1]
        .split_whitespace()
        .map(|p| {
            Regex::new(r"-\d+-")
                .unwrap()
                .replace(p, "-NN-")
                .into_owned()
        })
        .collect();
    let apt = Regex::new(r"(?m)^\s*apt_install (.+)$").unwrap();
    let installed: BTreeSet<String> = apt
        .captures_iter(&ci)
        .flat_map(|c| {
            c[1].split_whitespace()
                .map(|p| p.trim_matches('"').replace("-$pg_major-", "-NN-"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        wanted, installed,
        "the README's prerequisite line and .ci/run's installs differ"
    );
}

/// The man pages of perfaudit and of each command, rendered from the clap
/// definitions (as clap_mangen's generate_to names them: `perfaudit.1`,
/// `perfaudit-explain.1`, ...), by file name.
fn man_pages() -> BTreeMap<String, Vec<u8>> {
    fn render(command: clap::Command, version: &str, pages: &mut BTreeMap<String, Vec<u8>>) {
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            render(sub.clone(), version, pages);
        }
        let man = clap_mangen::Man::new(command).source(format!("perfaudit {version}"));
        let mut page = Vec::new();
        man.render(&mut page).expect("render a man page");
        pages.insert(man.get_filename(), page);
    }
    let mut command = perfaudit::cli::Cli::command().disable_help_subcommand(true);
    command.build();
    let mut pages = BTreeMap::new();
    render(command, env!("CARGO_PKG_VERSION"), &mut pages);
    pages
}

#[test]
fn the_man_pages_are_what_the_cli_definitions_render() {
    let dir = root().join("docs/man");
    let pages = man_pages();
    for command in ["rewrite", "explain", "indexes", "advise"] {
        assert!(
            pages.contains_key(&format!("perfaudit-{command}.1")),
            "{pages:?}"
        );
    }
    let on_disk: BTreeMap<String, Vec<u8>> =
        files_under(&dir, &|p: &Path| p.extension().is_some_and(|e| e == "1"))
            .into_iter()
            .map(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).unwrap())
            })
            .collect();
    if std::env::var_os(UPDATE).is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for name in on_disk.keys().filter(|name| !pages.contains_key(*name)) {
            std::fs::remove_file(dir.join(name)).unwrap();
        }
        for (name, page) in &pages {
            std::fs::write(dir.join(name), page).unwrap();
        }
        return;
    }
    let differ: Vec<&String> = pages
        .keys()
        .chain(on_disk.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|name| pages.get(*name) != on_disk.get(*name))
        .collect();
    assert!(
        differ.is_empty(),
        "docs/man/ is not what the command-line definitions render ({differ:?} differ, are \
         missing or are left over): rerun with `{UPDATE}=1 cargo test --test docs`, which \
         rewrites them, and commit them"
    );
}
