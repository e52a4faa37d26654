//! The `durafn` command: the local emulator (`durafn dev`) and the
//! self-hosted server (`durafn server`).
//!
//! - [`template`]: reads `template.yaml` (AWS SAM): functions, events, table.
//! - [`lambda_api`]: the Lambda Runtime API that handler processes poll.

pub mod lambda_api;
pub mod template;
