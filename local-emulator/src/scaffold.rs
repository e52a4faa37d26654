//! `durafn new NAME`: scaffolds a new project — a Cargo workspace with one
//! durable function, its test on `durafn::testing::TestRuntime`, a SAM
//! `template.yaml` that `durafn dev` runs as generated, and a README.
//!
//! The files are templates under `scaffold/` with `{{placeholder}}`s.

use std::path::{Path, PathBuf};

/// Where the generated project gets the Durafn SDK from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SdkSource {
    /// The released crate: `durafn = "0.1"`.
    Released,
    /// A local checkout: the folder of the `durafn` package (a checkout's
    /// `sdk/`), absolute.
    Path(PathBuf),
}

/// What to generate.
#[derive(Debug, Clone)]
pub(crate) struct NewProject {
    /// The project's name: its function, package and binary name.
    pub name: String,
    /// The folder to create it in (must not exist, or be empty).
    pub dir: PathBuf,
    /// Where the SDK comes from.
    pub sdk: SdkSource,
}

/// Why a project could not be generated.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScaffoldError {
    /// The name cannot name a Cargo package and a function.
    #[error(
        "{name:?} is not a valid project name: {reason}; use letters, digits, `-` and `_`, starting with a letter (such as `my-workflow`)"
    )]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The target folder holds files already.
    #[error(
        "{0} already exists and is not empty; choose another NAME or --dir, or remove the folder"
    )]
    NotEmpty(PathBuf),
    /// The target exists and is not a folder.
    #[error("{0} exists and is not a folder; choose another NAME or --dir")]
    NotADirectory(PathBuf),
    /// `--sdk-path` does not point at the SDK.
    #[error("--sdk-path {path}: {reason}")]
    SdkPath {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

const WORKSPACE_TOML: &str = include_str!("scaffold/Cargo.toml.tmpl");
const FUNCTION_TOML: &str = include_str!("scaffold/function.Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("scaffold/lib.rs.tmpl");
const MAIN_RS: &str = include_str!("scaffold/main.rs.tmpl");
const TEST_RS: &str = include_str!("scaffold/test.rs.tmpl");
const TEMPLATE_YAML: &str = include_str!("scaffold/template.yaml.tmpl");
const README_MD: &str = include_str!("scaffold/README.md.tmpl");
const GITIGNORE: &str = include_str!("scaffold/gitignore.tmpl");

/// The longest name: Lambda's limit on a function name.
const MAX_NAME_LEN: usize = 64;

/// Names a package cannot take: Rust's keywords (the library's crate name),
/// crates every crate sees, and the generated crate's own dependencies.
const RESERVED: &[&str] = &[
    "abstract",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
    "alloc",
    "core",
    "proc_macro",
    "std",
    "test",
    "durafn",
    "durafn_runtime",
    "serde",
    "serde_json",
    "tokio",
    "tracing",
    "tracing_subscriber",
];

/// Checks that `name` can name the project's Cargo package, its library
/// crate (`-` becomes `_`), its binary and its Lambda function.
pub(crate) fn validate_name(name: &str) -> Result<(), ScaffoldError> {
    let invalid = |reason: String| ScaffoldError::InvalidName {
        name: name.to_string(),
        reason,
    };
    let Some(first) = name.chars().next() else {
        return Err(invalid("it is empty".into()));
    };
    if !first.is_ascii_alphabetic() {
        return Err(invalid(format!("it starts with {first:?}, not a letter")));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(invalid(format!("it contains {c:?}")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(format!(
            "it is {} characters long, more than a Lambda function name's {MAX_NAME_LEN}",
            name.len()
        )));
    }
    let crate_name = name.replace('-', "_");
    if RESERVED.contains(&crate_name.to_ascii_lowercase().as_str()) {
        return Err(invalid(
            "it is a Rust keyword or the name of a crate the project depends on".into(),
        ));
    }
    Ok(())
}

/// Resolves `--sdk-path`: the folder of the `durafn` package, or a Durafn
/// checkout (whose `sdk/` is then used). Returns it absolute.
pub(crate) fn resolve_sdk_path(path: &Path) -> Result<PathBuf, ScaffoldError> {
    let err = |reason: String| ScaffoldError::SdkPath {
        path: path.to_path_buf(),
        reason,
    };
    let abs = std::fs::canonicalize(path).map_err(|e| {
        err(format!(
            "{e}; expected the `sdk/` folder of a Durafn checkout"
        ))
    })?;
    for candidate in [abs.clone(), abs.join("sdk")] {
        if is_sdk_package(&candidate) {
            return Ok(candidate);
        }
    }
    Err(err(
        "no Cargo.toml with `name = \"durafn\"` there or in its `sdk/`; expected the `sdk/` folder of a Durafn checkout".into(),
    ))
}

fn is_sdk_package(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|text| {
        text.lines()
            .map(str::trim)
            .take_while(|l| !l.starts_with('[') || *l == "[package]")
            .any(|l| l.replace(' ', "") == "name=\"durafn\"")
    })
}

/// The project's files: (path relative to its folder, contents).
pub(crate) fn render(name: &str, sdk: &SdkSource) -> Vec<(PathBuf, String)> {
    let crate_name = name.replace('-', "_");
    let resource: String = name
        .split(['-', '_'])
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut cs = s.chars();
            cs.next()
                .map(|c| c.to_ascii_uppercase().to_string() + cs.as_str())
                .unwrap_or_default()
        })
        .collect();
    let (dep, comment, readme) = match sdk {
        SdkSource::Released => (
            "\"0.1\"".to_string(),
            "the released crate. For a local checkout, use\n# `{ path = \"/path/to/durafn/sdk\" }`.".to_string(),
            "the released crate, `durafn = \"0.1\"` in the workspace `Cargo.toml`. To build against a local Durafn checkout instead, set `durafn = { path = \"/path/to/durafn/sdk\" }` there (what `durafn new NAME --sdk-path PATH` generates).".to_string(),
        ),
        SdkSource::Path(p) => {
            let shown = p.display().to_string();
            (
                format!("{{ path = {} }}", toml_string(&shown)),
                "a local checkout (`durafn new --sdk-path`). For the\n# released crate, use `\"0.1\"`.".to_string(),
                format!(
                    "a local checkout, `durafn = {{ path = \"{shown}\" }}` in the workspace `Cargo.toml` (generated with `--sdk-path`). To use the released crate instead, set `durafn = \"0.1\"` there."
                ),
            )
        }
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{resource}}", &resource)
            .replace("{{durafn_dep}}", &dep)
            .replace("{{sdk_comment}}", &comment)
            .replace("{{sdk_readme}}", &readme)
    };
    let function = PathBuf::from("functions").join(name);
    vec![
        ("Cargo.toml".into(), fill(WORKSPACE_TOML)),
        (".gitignore".into(), fill(GITIGNORE)),
        ("README.md".into(), fill(README_MD)),
        ("template.yaml".into(), fill(TEMPLATE_YAML)),
        (function.join("Cargo.toml"), fill(FUNCTION_TOML)),
        (function.join("src/lib.rs"), fill(LIB_RS)),
        (function.join("src/main.rs"), fill(MAIN_RS)),
        (function.join("tests/workflow.rs"), fill(TEST_RS)),
    ]
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Generates the project; returns the files written.
pub(crate) fn create(project: &NewProject) -> Result<Vec<PathBuf>, ScaffoldError> {
    validate_name(&project.name)?;
    let dir = &project.dir;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Io { path, source }
    };
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => return Err(ScaffoldError::NotADirectory(dir.clone())),
        Ok(_) => {
            if std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
                return Err(ScaffoldError::NotEmpty(dir.clone()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(dir)(e)),
    }
    let mut written = Vec::new();
    for (rel, contents) in render(&project.name, &project.sdk) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, contents).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

    use super::*;

    #[test]
    fn names_are_checked_with_a_reason() {
        for ok in ["hello", "my-workflow", "order_2", "A1"] {
            validate_name(ok).unwrap();
        }
        for (bad, why) in [
            ("", "empty"),
            ("1st", "not a letter"),
            ("-x", "not a letter"),
            ("my app", "contains ' '"),
            ("café", "contains 'é'"),
            ("fn", "keyword"),
            ("test", "keyword"),
            ("durafn", "depends on"),
            ("serde-json", "depends on"),
        ] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(e.contains("such as `my-workflow`"), "{e}");
        }
        let long = "a".repeat(65);
        assert!(validate_name(&long).unwrap_err().to_string().contains("64"));
    }

    #[test]
    fn every_placeholder_is_filled() {
        for sdk in [
            SdkSource::Released,
            SdkSource::Path(PathBuf::from("/opt/du\"rafn/sdk")),
        ] {
            for (path, text) in render("my-flow", &sdk) {
                assert!(!text.contains("{{"), "{}: {text}", path.display());
            }
        }
        let files = render("my-flow", &SdkSource::Released);
        let yaml = &files
            .iter()
            .find(|(p, _)| p.ends_with("template.yaml"))
            .unwrap()
            .1;
        assert!(yaml.contains("MyFlowFunction:"), "{yaml}");
        let main = &files
            .iter()
            .find(|(p, _)| p.ends_with("main.rs"))
            .unwrap()
            .1;
        assert!(main.contains("my_flow::workflow"), "{main}");
        let ws = &files[0].1;
        assert!(ws.contains("durafn = \"0.1\""), "{ws}");
        let local = render("x", &SdkSource::Path(PathBuf::from("/opt/du\"rafn/sdk")));
        assert!(
            local[0]
                .1
                .contains(r#"durafn = { path = "/opt/du\"rafn/sdk" }"#),
            "{}",
            local[0].1
        );
    }

    #[test]
    fn a_non_empty_folder_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
        let project = NewProject {
            name: "hello".into(),
            dir: tmp.path().to_path_buf(),
            sdk: SdkSource::Released,
        };
        let e = create(&project).unwrap_err();
        assert!(matches!(e, ScaffoldError::NotEmpty(_)), "{e}");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        // An empty folder is fine.
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let files = create(&NewProject {
            dir: empty,
            ..project
        })
        .unwrap();
        assert_eq!(files.len(), 8);
    }

    #[test]
    fn sdk_path_accepts_the_sdk_or_a_checkout() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let sdk = resolve_sdk_path(&repo.join("sdk")).unwrap();
        assert!(sdk.is_absolute() && sdk.ends_with("sdk"));
        assert_eq!(resolve_sdk_path(repo).unwrap(), sdk);
        let e = resolve_sdk_path(&repo.join("runtime"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected the `sdk/` folder"), "{e}");
        let e = resolve_sdk_path(&repo.join("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected the `sdk/` folder"), "{e}");
    }
}
