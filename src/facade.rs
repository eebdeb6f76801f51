//! The one public door into gitship's internals, for its integration tests (`tests/it`), its
//! benchmarks (`benches/`) and its fuzz targets (`fuzz/`): everything else of this crate is
//! `pub(crate)` (ARCHITECTURE.md, "Crates and the public surface"). Each item is here for a reason named
//! beside it, under the path it has inside the crate (`facade::ops::history::HistoryReport` is
//! `crate::ops::history::HistoryReport`), so a caller reads as the code does. The foundation and
//! the Kubernetes stage are crates of their own (`gitship_foundation`, `gitship_kube`): callers
//! use those directly. An item no caller outside the crate needs does not belong here; a test of
//! internals only belongs in its module's unit tests.

/// The plan model: the JSON of `plan`, `drift` and `diff` is deserialised into it (ripgrep's
/// `tests/json.rs`), and its Markdown renderer is checked on a plan a test builds.
pub mod plan {
    pub use crate::plan::{
        DriftKind, DriftReport, FORMAT_VERSION, FieldChange, GitInfo, ImageAction, KubernetesPart,
        ObjectAction, ObjectChange, ObjectDrift, ObjectRef, Plan, ResourceAction, unified_diff,
    };
    /// The Markdown of a plan (a pull request comment) and its size limit.
    pub mod markdown {
        pub use crate::plan::markdown::render_plan;
    }
    /// The limit `render_plan` is called with.
    pub mod report {
        pub use crate::plan::report::MARKDOWN_LIMIT;
    }
}

/// The operations' typed reports: a command's `-o json` is deserialised into them; and the
/// `skaffold.yaml` reader, a fuzz target.
pub mod ops {
    /// `history -o json`.
    pub mod history {
        pub use crate::ops::history::HistoryReport;
    }
    /// `destroy -o json`.
    pub mod destroy {
        pub use crate::ops::destroy::{DestroyReport, DestroyStep};
    }
    /// `affected -o json`.
    pub mod affected {
        pub use crate::ops::affected::{Affected, Touches};
    }
    /// The status the agent publishes, as `status` reads it.
    pub mod agent_status {
        pub use crate::ops::agent_status::{Revision, Status, SyncState};
    }
    /// `status -o json`.
    pub mod status {
        pub use crate::ops::status::StatusReport;
    }
    /// `envs -o json`.
    pub mod envs {
        pub use crate::ops::envs::{EnvironmentSummary, PreviewSummary};
    }
    /// `gc -o json`; and `gc` itself with the `Workspace` it runs in, called by a test with a
    /// `confirm` that extends a preview between its listing and its destroy (a race the CLI
    /// cannot time).
    pub mod gc {
        pub use crate::ops::gc::{GcReport, gc};
        pub use crate::ops::session::Workspace;
    }
    /// `env new --ephemeral -o json`.
    pub mod preview {
        pub use crate::ops::preview::PreviewReport;
    }
    /// `validate -o json`.
    pub mod validate {
        pub use crate::ops::validate::ValidateReport;
    }
    /// `gitship init`'s reader of `skaffold.yaml` (untrusted text): the fuzz target `skaffold`.
    pub mod init {
        pub use crate::ops::init::parse_skaffold;
    }
}

/// The agent: its metrics registry (benchmarked and checked against the exposition formats),
/// its status (`/status` is deserialised into it) and the names a test sets its secrets under.
pub mod agent {
    /// The metrics registry and its two exposition formats.
    pub mod metrics {
        pub use crate::agent::metrics::{Format, Metrics, SyncResult};
    }
    /// The status the agent serves.
    pub mod state {
        pub use crate::agent::state::{Revision, Status, SyncState};
    }
    /// The webhook secret's variable and the header a follower signs a forwarded webhook with.
    pub mod http {
        pub use crate::agent::http::{FORWARD_SIGNATURE_HEADER, GITHUB_SECRET_VARIABLE};
    }
    /// The commit-status token's variable.
    pub mod notify {
        pub use crate::agent::notify::GITHUB_TOKEN_VARIABLE;
    }
}

/// The image stage, driven against a real registry and real builders (`tests/it/build.rs`,
/// the plan of a built image), and its registry parsers, a fuzz target.
pub mod image {
    pub use crate::image::{
        BuildAction, BuildError, BuildOptions, BuildRequest, BuildResult, PlannedAction,
        REVISION_LABEL, Registry, SOURCE_LABEL, build_images, image_refs, plan_images,
    };
    /// A `registry:` value and docker's `config.json` (untrusted text).
    pub mod registry {
        pub use crate::image::registry::{is_loopback, stored_credentials};
    }
}

/// The repository: its YAML reader and the environment config parser (fuzz targets and the
/// tests that read a stream of manifests), and the config a Terraform test builds.
pub mod repo {
    pub use crate::repo::{App, EnvConfig, Layout, Repository};
    /// The YAML reader with positions.
    pub mod yaml {
        pub use crate::repo::yaml::parse_documents;
    }
    /// The environment config's parts, and a `registry:` value's check (a fuzz target).
    pub mod config {
        pub use crate::repo::config::{
            ClusterConfig, DeployConfig, DriftConfig, SpanMap, TerraformConfig,
            is_repository_prefix,
        };
    }
}

/// The Terraform stage, driven against the real `terraform` (`tests/it/terraform.rs`, the
/// `terraform_init` benchmark).
pub mod terraform {
    pub use crate::terraform::{
        ChangeAction, DriftReport, InitOutcome, PlanMode, PlanSummary, StaticProblem, Terraform,
        TerraformError, TerraformSettings, check_static, redacted_outputs,
    };
}

/// The template engine, a fuzz target.
pub mod render {
    pub use crate::render::{RenderInputs, UnknownOutputs, render_sources, to_yaml_stream};
}

/// gitship's own Git clone, which the agent benchmark fetches.
pub mod git {
    /// The clone.
    pub mod clone {
        pub use crate::git::clone::GitSource;
    }
}
