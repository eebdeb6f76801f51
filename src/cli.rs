//! clap definitions only. Nothing outside `settings.rs` sees these types: they are converted once
//! into validated [`crate::settings::Settings`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Make a Git monorepo the single source of truth for a running system.
#[derive(Debug, Parser)]
#[command(name = "gitship", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parse `std::env::args_os()`; `--help`/`--version` come back as errors of their own kind.
    pub fn try_parse_args() -> Result<Self, clap::Error> {
        Self::try_parse()
    }
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The repository (defaults to the enclosing Git work tree)
    #[arg(short = 'C', long = "repo", global = true, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Output format for data written to stdout
    #[arg(short, long, global = true, value_enum, default_value_t = OutputArg::Human)]
    pub output: OutputArg,
    /// When to use color
    #[arg(long, global = true, value_enum, default_value_t = ColorArg::Auto)]
    pub color: ColorArg,
    /// Print less: only errors and data
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more (-v debug, -vv trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Kubeconfig file (defaults to KUBECONFIG, then ~/.kube/config, then in-cluster config)
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputArg {
    Human,
    Json,
    Markdown,
    /// A GitLab Code Quality report (`validate` only)
    Codequality,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List environments (name, namespace, cluster context) and the live previews
    Envs,
    /// Destroy every expired preview environment
    Gc(GcArgs),
    /// All static checks for one or all environments; no side effects
    Validate(ValidateArgs),
    /// Print the environment's manifests as multi-document YAML on stdout
    Render(RenderArgs),
    /// Manage environments
    #[command(subcommand)]
    Env(EnvCommand),
    /// Adopt an existing repository: find its apps, manifests and Terraform, write gitship.yaml
    /// (only what differs from the conventions) and config/<env>.yaml
    Init(InitArgs),
    /// Show what a deploy would change across images, Terraform and Kubernetes
    Plan(PlanArgs),
    /// Build, run Terraform, apply manifests, wait for health, prune
    Deploy(DeployArgs),
    /// Show how the cluster differs from Git (Kubernetes only)
    Diff(ClusterArgs),
    /// Report what is running that differs from Git, or from the pinned revision of a pinned
    /// environment (Kubernetes and Terraform)
    Drift(DriftArgs),
    /// Build and push the images of the environment's apps
    Build(BuildArgs),
    /// Show what the cluster runs: the last deploys, the deploy lock and the agent's leader
    /// (`--wait`: wait until the agent runs a revision, healthy)
    Status(ShowStatusArgs),
    /// Pin the environment at a revision: deploys of others are refused, the agent heals to it
    Pin(PinArgs),
    /// Re-deploy the last good revision before the current one (images and Kubernetes; Terraform
    /// with --terraform), and pin the environment there
    Rollback(RollbackArgs),
    /// Remove the environment's pin and suspension: it follows Git again (the agent syncs now)
    Resume(StatusArgs),
    /// Suspend the environment's agent: no sync and no heal until `resume` (deploys still work)
    Suspend(SuspendArgs),
    /// Ask the environment's agent to sync (and heal) now, and wait for its answer
    Sync(SyncArgs),
    /// Break the environment's deploy lock when a deploy is stuck (`--force`): it stops before
    /// its next write
    Unlock(UnlockArgs),
    /// Delete everything the environment deployed: its objects (last wave first), its Terraform
    /// resources, gitship's records and the namespace gitship created; shows the plan, then asks
    Destroy(DestroyArgs),
    /// The environment's deploys, newest first: revision, author, who, source, timing, outcome,
    /// changes
    History(HistoryArgs),
    /// Which environments and apps the commits since REF touch (for CI matrices and skipping
    /// jobs); read-only
    Affected(AffectedArgs),
    /// Pull-based GitOps: reconcile an environment from Git, heal drift (`agent manifests` prints
    /// what runs it in the cluster)
    Agent(AgentArgs),
    /// Run gitship in CI (`ci init github|gitlab` writes the workflow)
    #[command(subcommand)]
    Ci(CiCommand),
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Environment to check (all when omitted)
    pub env: Option<String>,
    /// Terraform outputs in `terraform output -json` format (instead of the real state)
    #[arg(long, value_name = "FILE")]
    pub terraform_outputs: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Environment to render
    pub env: String,
    /// Terraform outputs in `terraform output -json` format (instead of the real state)
    #[arg(long, value_name = "FILE")]
    pub terraform_outputs: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Bootstrap a new environment's config from an existing one
    New(EnvNewArgs),
}

#[derive(Debug, Args)]
pub struct EnvNewArgs {
    /// Name of the new environment (a DNS label)
    pub name: String,
    /// Environment to copy
    #[arg(long = "from", value_name = "ENV")]
    pub from: String,
    /// Namespace of the new environment (defaults to one derived from the source's)
    #[arg(long, conflicts_with = "ephemeral")]
    pub namespace: Option<String>,
    /// A preview: no config file is written; it is recorded in the source's cluster (its
    /// namespace `<source-namespace>-NAME`), found by name by every command, destroyed by `gc`
    /// once expired. Running it again for a live preview updates its values and TTL
    #[arg(long)]
    pub ephemeral: bool,
    /// How long the preview lives from now (at most `168h`)
    #[arg(
        long,
        value_name = "DURATION",
        requires = "ephemeral",
        default_value = "72h"
    )]
    pub ttl: String,
    /// Override a value of the source's config for the preview: `values.KEY=VALUE` (dotted keys,
    /// typed like YAML scalars; a key the source lacks is added)
    #[arg(long = "set", value_name = "values.KEY=VALUE", requires = "ephemeral")]
    pub set: Vec<String>,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Go ahead without asking (required when stdin is not a terminal)
    #[arg(long)]
    pub yes: bool,
    /// Only say which previews would be destroyed
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Environment
    pub env: String,
    /// Run against an in-process simulated cluster persisted in .gitship/sandbox/<env>.json
    #[arg(long)]
    pub sandbox: bool,
    /// Terraform outputs in `terraform output -json` format (instead of the real state)
    #[arg(long, value_name = "FILE")]
    pub terraform_outputs: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Exit 2 when there are changes, 0 when there are none
    #[arg(long)]
    pub exit_code: bool,
    /// Save the plan to FILE for `gitship deploy --plan FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also write the plan's JSON report (as `-o json`: redacted, safe as a CI artifact) to
    /// FILE, for `gitship deploy --reviewed FILE` after the merge
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Plan this revision (SHA, tag or branch) instead of the work tree
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Compare with this revision (SHA, tag or branch) instead of Git's HEAD, or of the pinned
    /// revision of a pinned environment
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
}

#[derive(Debug, Args)]
pub struct BuildOptions {
    /// Rebuild images even when their tag already exists in the registry
    #[arg(long)]
    pub force_build: bool,
    /// How many images to build at once (default: number of CPUs)
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// Allow building from a work tree with uncommitted changes where the environment forbids it
    #[arg(long)]
    pub allow_dirty: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Environment
    pub env: String,
    #[command(flatten)]
    pub build: BuildOptions,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub build: BuildOptions,
    /// Apply exactly this saved plan (from `gitship plan --out`)
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Plan again, compare with this reviewed plan report (`gitship plan --report FILE`, or
    /// `-o json`), say whether it is what was reviewed (or how it differs), then apply it
    #[arg(long, value_name = "FILE", conflicts_with = "plan")]
    pub reviewed: Option<PathBuf>,
    /// With --reviewed: refuse, before any change, a plan that differs from the reviewed one
    #[arg(long, requires = "reviewed")]
    pub require_reviewed: bool,
    /// Allow a deploy that would prune every object of the environment
    #[arg(long)]
    pub allow_empty: bool,
    /// Also prune Namespaces, PersistentVolumeClaims and CustomResourceDefinitions
    #[arg(long)]
    pub prune_protected: bool,
    /// Do not prune anything
    #[arg(long)]
    pub no_prune: bool,
    /// How long to wait for workloads to become healthy (e.g. 90s, 5m)
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// How long to wait for another deploy of the environment to finish (e.g. 2m)
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
    /// How long the environment's lock stays valid without renewal, should gitship die (30s)
    #[arg(long, value_name = "DURATION")]
    pub lock_lease: Option<String>,
    /// Do not check the cluster, registry and Terraform backend before changing anything
    #[arg(long)]
    pub skip_preflight: bool,
    /// Deploy although the environment is pinned at another revision
    #[arg(long)]
    pub force: bool,
    /// Deploy this revision (SHA, tag or branch) instead of the work tree, which is not touched
    /// (with --plan: a plan saved at that revision)
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// When the workloads do not become healthy, roll back to the previous good revision at
    /// once (both recorded), then exit 1, as `helm upgrade --atomic`
    #[arg(long)]
    pub atomic: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to generate for
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Environment
    pub env: String,
    /// Read the in-process simulated cluster persisted in .gitship/sandbox/<env>.json
    #[arg(long)]
    pub sandbox: bool,
}

#[derive(Debug, Args)]
pub struct ShowStatusArgs {
    #[command(flatten)]
    pub status: StatusArgs,
    /// Wait until the agent runs the revision (or a descendant of it) and reports it synced: exit
    /// 0 then, 1 at the timeout (a CI gate, as `kubectl wait --for=condition=Ready`)
    #[arg(long)]
    pub wait: bool,
    /// With --wait: the revision to wait for (default: HEAD)
    #[arg(long, value_name = "REV", requires = "wait")]
    pub rev: Option<String>,
    /// With --wait: how long to wait (default 10m)
    #[arg(long, value_name = "DURATION", requires = "wait")]
    pub timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct SuspendArgs {
    #[command(flatten)]
    pub status: StatusArgs,
    /// Why (shown by `status` and in the agent's status)
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    #[command(flatten)]
    pub status: StatusArgs,
    /// Break the lock even though a deploy may hold it (required)
    #[arg(long)]
    pub force: bool,
    /// Do not ask (required when stdin is not a terminal)
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub status: StatusArgs,
    /// Do not ask (required when stdin is not a terminal)
    #[arg(long)]
    pub yes: bool,
    /// Leave the Terraform resources (no `terraform destroy`)
    #[arg(long)]
    pub keep_terraform: bool,
    /// Leave the environment's namespace, even when gitship created it
    #[arg(long)]
    pub keep_namespace: bool,
    /// The cluster is gone (deleted outside gitship, or with a Terraform destroy that failed
    /// later): take no Kubernetes step, destroy only the Terraform resources
    #[arg(long, conflicts_with_all = ["keep_terraform", "keep_namespace"])]
    pub skip_kubernetes: bool,
    /// How long each deleted object (and the namespace) may take to be gone (default 5m)
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// How long to wait for a deploy of the environment to finish (default: `deploy.lock_timeout`)
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
    /// How long the environment's lock stays valid without renewal, should gitship die (30s)
    #[arg(long, value_name = "DURATION")]
    pub lock_lease: Option<String>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub status: StatusArgs,
    /// Ask, and do not wait for the answer
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the agent's answer (default 5m)
    #[arg(long, value_name = "DURATION", conflicts_with = "no_wait")]
    pub timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Environment
    pub env: String,
    /// How many deploys to show, newest first (default 20)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Show how the objects two records applied differ: each a record number (`#17`) or a
    /// deployed revision; Secret values are never shown
    #[arg(long, num_args = 2, value_names = ["A", "B"], conflicts_with = "limit")]
    pub diff: Option<Vec<String>>,
    /// Read the in-process simulated cluster persisted in .gitship/sandbox/<env>.json
    #[arg(long)]
    pub sandbox: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
    #[command(flatten)]
    pub run: AgentRunArgs,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Print the manifests that run the agent in the cluster (ServiceAccount, RBAC, Deployment,
    /// Service)
    Manifests(AgentManifestsArgs),
}

#[derive(Debug, Args)]
pub struct AgentRunArgs {
    /// Environment to reconcile
    #[arg(required = true)]
    pub env: Option<String>,
    /// Git URL to pull from (file://, https://, ssh://, or a local path); default: the
    /// repository of `-C` and its current branch
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// Branch to follow (default: agent.branch, else the source's current branch)
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,
    /// Where the gitship repository lies below the Git root (e.g. examples/blog-infra)
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
    /// Where the agent keeps its clone (default: $XDG_CACHE_HOME/gitship/agent, else
    /// ~/.cache/gitship/agent)
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// How often to fetch (default 1m)
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
    /// How often to look for drift (default 1m)
    #[arg(long, value_name = "DURATION")]
    pub heal_interval: Option<String>,
    /// Serve /healthz, /readyz, /metrics, /status, / and POST /hooks/git on ADDR (e.g.
    /// 0.0.0.0:8080)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// How long the leader Lease stays valid without renewal (default 15s)
    #[arg(long, value_name = "DURATION")]
    pub lease_duration: Option<String>,
    /// Reconcile once, then exit with deploy's exit codes
    #[arg(long)]
    pub once: bool,
    /// Reconcile the in-process simulated cluster persisted in .gitship/sandbox/<env>.json
    #[arg(long)]
    pub sandbox: bool,
}

#[derive(Debug, Args)]
pub struct AgentManifestsArgs {
    /// Environment the agent reconciles
    pub env: String,
    /// The agent's image (e.g. ghcr.io/acme/gitship:0.1.0)
    #[arg(long, value_name = "REF")]
    pub image: String,
    /// The Git URL the agent pulls from (default: the repository's `origin` remote)
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// Branch to follow
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,
    /// Where the gitship repository lies below the Git root
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PinArgs {
    /// Environment
    pub env: String,
    /// The revision to pin (SHA, tag or branch)
    #[arg(long, value_name = "REV")]
    pub rev: String,
    /// Use the in-process simulated cluster persisted in .gitship/sandbox/<env>.json
    #[arg(long)]
    pub sandbox: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Environment
    pub env: String,
    /// Roll back to this revision (SHA, tag or branch)
    #[arg(long, value_name = "REV", conflicts_with = "steps")]
    pub to: Option<String>,
    /// How many good revisions to go back (default 1)
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// How long to wait for a deploy holding the environment's lock (e.g. 30s); `gitship unlock
    /// ENV --force` breaks a stuck one
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
    /// Also roll Terraform back (its module must be the work tree's); the revision's manifests
    /// are rendered again with the outputs of the Terraform it applies
    #[arg(long)]
    pub terraform: bool,
    /// Render the revision again with today's Terraform outputs, instead of re-applying the
    /// manifests its deploy applied (stored in the `gitship-<env>.revisions` Secret)
    #[arg(long)]
    pub render: bool,
    /// Do not ask (needed when stdin is not a terminal)
    #[arg(long)]
    pub yes: bool,
    /// Use the in-process simulated cluster persisted in .gitship/sandbox/<env>.json
    #[arg(long)]
    pub sandbox: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The environment to write a config for
    #[arg(long, value_name = "NAME", default_value = "staging")]
    pub env: String,
    /// The image registry prefix (e.g. ghcr.io/acme/shop)
    #[arg(long, value_name = "PREFIX")]
    pub registry: Option<String>,
    /// Overwrite gitship.yaml and config/<env>.yaml when they exist
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct AffectedArgs {
    /// Compare HEAD with this revision (SHA, tag or branch), from their merge base; committed
    /// changes only. `deployed:ENV`: the revision ENV last deployed successfully, read from its
    /// cluster (never deployed: everything is affected)
    #[arg(long, value_name = "REF")]
    pub since: String,
    /// With `deployed:ENV`: read the in-process simulated cluster persisted in
    /// .gitship/sandbox/<env>.json
    #[arg(long)]
    pub sandbox: bool,
}

#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// Write the CI configuration: plans on pull requests, deploys from the default branch,
    /// drift on a schedule
    Init(CiInitArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CiPlatformArg {
    /// GitHub Actions: .github/workflows/gitship.yml
    Github,
    /// GitLab CI: .gitlab-ci.yml
    Gitlab,
}

#[derive(Debug, Args)]
pub struct CiInitArgs {
    /// The CI platform
    #[arg(value_enum)]
    pub platform: CiPlatformArg,
    /// The environments pull requests are planned against, each in its own job (default:
    /// `staging` when it exists, else the first environment that is not `production`, and
    /// every environment deployed)
    #[arg(long = "plan-env", value_name = "ENV", num_args = 1..)]
    pub plan_env: Vec<String>,
    /// The environments deployed from the default branch, in order (default: `production`)
    #[arg(long = "deploy-env", value_name = "ENV", num_args = 1..)]
    pub deploy_env: Vec<String>,
    /// The branch whose pushes deploy (`github` only; default: the repository's default
    /// branch, `origin/HEAD`, else the branch checked out)
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,
    /// Run the jobs in this image (gitship's CI image, `docker build --target ci -f
    /// src/agent/Dockerfile .`), pinned by digest (`REPO@sha256:...`), instead of installing
    /// gitship with `cargo install` in each job
    #[arg(long, value_name = "REF@DIGEST")]
    pub image: Option<String>,
    /// The AWS role the deploy jobs assume through OIDC (GitHub: `id-token: write`, and Amazon
    /// ECR's login; GitLab: `id_tokens:`) for Terraform's backend, instead of access keys in
    /// secrets (with `--aws-region`)
    #[arg(long, value_name = "ARN", requires = "aws_region")]
    pub aws_role: Option<String>,
    /// The AWS role the plan and drift jobs assume (read-only; default: `--aws-role`)
    #[arg(long, value_name = "ARN", requires = "aws_role")]
    pub aws_plan_role: Option<String>,
    /// The AWS region of the OIDC roles
    #[arg(long, value_name = "REGION", requires = "aws_role")]
    pub aws_region: Option<String>,
    /// A preview environment per pull request, derived from ENV (`env new pr-<number> --from
    /// ENV --ephemeral`): deployed on each push, commented, destroyed when it closes; `gc` on
    /// the schedule
    #[arg(long, value_name = "ENV")]
    pub preview_from: Option<String>,
    /// The preview's URL commented on the pull request: text with `${values.KEY}` of the
    /// preview's values (e.g. `https://${values.host}/`)
    #[arg(long, value_name = "TEMPLATE", requires = "preview_from")]
    pub preview_url: Option<String>,
    /// Overwrite the files when they exist
    #[arg(long)]
    pub force: bool,
}
