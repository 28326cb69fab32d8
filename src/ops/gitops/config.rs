//! The `[gitops]` section: which repository, which remote and base branch, how a
//! reviewer becomes a git author, which pull-request provider, and the bounds of one
//! git command. Unknown keys are refused, like every section of the broker's file.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The `[gitops]` section (`docs/GITOPS.md`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitopsConfig {
    /// The repository BIP work happens in (its top directory). Without it, gitops is
    /// off in the broker.
    pub repo: Option<PathBuf>,
    /// The remote the final approval pushes to (default `origin`).
    pub remote: String,
    /// The branch implementations start from and pull requests target (default
    /// `main`).
    pub base: String,
    /// The git program (default `git`, looked up in `PATH`).
    pub git: PathBuf,
    /// Longest run of one git command, in seconds (default 120); it is killed then.
    pub timeout_secs: u64,
    /// Most bytes kept of a git command's stdout, and of its stderr (default 1 MiB);
    /// the rest is read and dropped.
    pub max_output: usize,
    /// Who commits (the committer of review commits; the author is the reviewer).
    pub committer: IdentityConfig,
    /// Reviewers' identities as git authors, by reviewer id; a reviewer not listed
    /// gets its id as name and `<id>@<email_domain>` as e-mail.
    pub identities: BTreeMap<String, IdentityConfig>,
    /// The domain of derived e-mail addresses (default `hive.invalid`, a reserved
    /// name that delivers nowhere).
    pub email_domain: String,
    /// Environment variables passed to git besides the fixed list (`PATH`, `HOME`,
    /// `LANG`, `SSH_AUTH_SOCK`): names only, their values come from the broker's own
    /// environment.
    pub pass_env: Vec<String>,
    /// Where pull requests go.
    pub provider: ProviderConfig,
}

impl Default for GitopsConfig {
    fn default() -> Self {
        GitopsConfig {
            repo: None,
            remote: "origin".into(),
            base: "main".into(),
            git: PathBuf::from("git"),
            timeout_secs: 120,
            max_output: 1 << 20,
            committer: IdentityConfig {
                name: "hivebus".into(),
                email: "hivebus@hive.invalid".into(),
            },
            identities: BTreeMap::new(),
            email_domain: "hive.invalid".into(),
            pass_env: Vec::new(),
            provider: ProviderConfig::default(),
        }
    }
}

/// A git identity: name and e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The name.
    pub name: String,
    /// The e-mail address.
    pub email: String,
}

/// The pull-request provider: `kind = "local"` or `kind = "github"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ProviderConfig {
    /// Records each request as a JSON file in `dir` (default `.hive/prs` under the
    /// broker's directory).
    Local {
        /// Where the records go.
        dir: Option<PathBuf>,
    },
    /// GitHub's REST API: `POST {api_base}/repos/{owner}/{repo}/pulls`.
    Github {
        /// The repository's owner (user or organisation).
        owner: String,
        /// The repository's name.
        repo: String,
        /// The API's base URL (default `https://api.github.com`; a GitHub Enterprise
        /// server's `https://host/api/v3`, or a test server).
        #[serde(default = "github_api")]
        api_base: String,
        /// The environment variable holding the token (default `GITHUB_TOKEN`). The
        /// token itself is never written in the file.
        #[serde(default = "github_token_env")]
        token_env: String,
    },
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig::Local { dir: None }
    }
}

fn github_api() -> String {
    "https://api.github.com".into()
}

fn github_token_env() -> String {
    "GITHUB_TOKEN".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_reads_with_defaults_and_refuses_unknown_keys() {
        let c: GitopsConfig = toml::from_str(
            "repo = \"/r\"\n[provider]\nkind = \"github\"\nowner = \"o\"\nrepo = \"r\"\n[identities.gpt]\nname = \"GPT\"\nemail = \"gpt@x.org\"\n",
        )
        .unwrap();
        assert_eq!(c.remote, "origin");
        assert_eq!(c.identities["gpt"].name, "GPT");
        assert!(
            matches!(c.provider, ProviderConfig::Github { ref api_base, .. } if api_base == "https://api.github.com")
        );
        assert!(toml::from_str::<GitopsConfig>("remot = \"x\"").is_err());
        assert!(toml::from_str::<GitopsConfig>("[provider]\nkind = \"gitlab\"").is_err());
    }

    #[test]
    fn the_example_of_docs_gitops_md_reads() {
        #[derive(Deserialize)]
        struct File {
            gitops: GitopsConfig,
        }
        let doc = include_str!("../../../docs/GITOPS.md");
        let start = doc.find("```toml\n[gitops]").expect("the example") + "```toml\n".len();
        let end = start + doc[start..].find("```").expect("its end");
        let f: File = toml::from_str(&doc[start..end]).unwrap();
        assert_eq!(f.gitops.identities["claude-opus"].name, "Claude Opus");
        assert!(
            matches!(f.gitops.provider, ProviderConfig::Github { ref owner, .. } if owner == "hivellm")
        );
    }
}
