//! Approvals, part one: the policy that decides whether a consumer's action runs,
//! asks a person, or is refused, before anyone is asked (issue 11).
//!
//! A consumer about to run something sends an APPROVAL request on its lease
//! (`{"tool": "shell", "command": "...", "cwd": "..."}`); the queue asks its action
//! gates ([`crate::ops::queue::hooks`]); [`PolicyGate`] is this policy as one. The
//! policy is the `[approval]` section of the config ([`ApprovalConfig`]), compiled
//! by [`Policy::from_config`], which checks each rule's examples and refuses a policy
//! whose examples fail. `docs/APPROVALS.md` is the user's guide.
//!
//! Invariants: deny > ask > allow across every matching rule; a compound command is
//! allowed only when each of its parts is; anything that cannot be read (a command
//! the splitter refuses, a malformed request) asks, never allows. People's decisions
//! with a wider scope than `once` are remembered ([`Memory`]); the policy's deny
//! still wins over them.
//!
//! # Layout
//! - `shell`: a command line split into simple commands and words (`shell::lexer`),
//!   wrappers such as `sudo`, `env`, `xargs`, `sh -c` peeled off (`shell::wrappers`).
//! - `pattern`: command patterns, path globs, host patterns.
//! - `builtin`: the built-in destructive list.
//! - `config`: the `[approval]` section as written.
//! - `rule`: one compiled rule and the check of its examples.
//! - `action`: the action to decide on, and how an APPROVAL request is read into one.
//! - `policy`: decisions and precedence.
//! - `timeout`: how long a request left to a person waits (per rule or default).
//! - `gate`: the policy as a queue action gate.
//! - `memory`: people's decisions remembered per task, session or always.
//! - `operator`: `op.approval.*`: the effective rules, a check, forgetting a learned
//!   rule, reloading the policy.

mod action;
mod builtin;
pub mod config;
pub mod gate;
pub mod memory;
pub mod operator;
pub mod pattern;
pub mod policy;
mod rule;
pub mod shell;
mod timeout;

#[cfg(test)]
mod tests;

pub use action::Action;
pub use builtin::{Builtin, BUILTINS};
pub use config::{ApprovalConfig, Effect, Examples, OneOrMany, RuleConfig, Tool};
pub use gate::PolicyGate;
pub use memory::{Learned, Memory};
pub use operator::ApprovalOperator;
pub use policy::{Decision, PartDecision, Policy, PolicyError, RuleRef};
