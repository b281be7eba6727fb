//! Command-line definitions.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Find open mail relays, backscatter sources and unregistered MTAs on your own networks.
#[derive(Debug, Parser)]
#[command(name = "relayguard", version, about, long_about = None)]
pub struct Cli {
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn")]
    pub log: String,
    /// The registry database (sweeps are recorded there).
    #[command(flatten)]
    pub database: crate::registry_cmd::DatabaseArgs,
    /// Directory with rule files overriding the built-in ones: any of relay-vectors.yaml,
    /// fingerprints.yaml, severities.yaml and generic-ptr.yaml (any other YAML file there is an
    /// error). The registry commands take the severities of the findings they derive from it too.
    #[arg(long, global = true, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sweep address blocks for SMTP listeners and audit each one.
    Sweep(Box<SweepArgs>),
    /// Sweep the shards of queued sweeps (`sweep --queue`) for one vantage, until stopped.
    Worker(Box<crate::queue_cmd::WorkerArgs>),
    /// Scheduled sweeps: planned on the queue at each slot of a cron expression.
    Schedule(crate::queue_cmd::ScheduleArgs),
    /// Sweeps planned with `sweep --queue`: progress per vantage.
    Sweeps(crate::queue_cmd::SweepsArgs),
    /// Vantage points: mark each as outside (external) or inside (internal) the campus firewall.
    #[command(subcommand)]
    Vantage(crate::vantage_cmd::VantageCommand),
    /// The registry: registrations, networks, findings, the HTTP server, agent enrollment.
    #[command(flatten)]
    Registry(Box<crate::registry_cmd::RegistryCommand>),
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per port, for people.
    Table,
    /// One JSON document with every host.
    Json,
    /// One JSON host object per line, written as each audit finishes.
    Jsonl,
    /// One row per finding (or per host without findings).
    Csv,
}

/// `relayguard sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// What to sweep: CIDRs, a.b.c.d-e.f.g.h ranges, addresses, host names, @FILE (one per line).
    #[arg(required_unless_present_any = ["from_dns", "zone"], value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Never touch these (CIDR, range, address, or @FILE); applied before any packet is sent.
    #[arg(long, value_name = "CIDR")]
    pub exclude: Vec<String>,
    /// Read exclusions from a file (one per line, # comments).
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Sweep IANA special-purpose ranges too ("this network", multicast, reserved, documentation,
    /// link-local; see docs/cli.md). Without it, a target inside one is refused and the special
    /// part of a target that overlaps one is left out, with a note.
    #[arg(long)]
    pub allow_special: bool,
    /// Print the addresses that would be probed, exclusions applied, and send nothing.
    #[arg(long)]
    pub list_targets: bool,
    /// Only find open ports: no SMTP command is sent and no DNS lookup made. Nothing is recorded
    /// in the registry (a sweep that tested nothing must not resolve findings).
    #[arg(long, conflicts_with_all = ["registry", "zone"])]
    pub discover_only: bool,
    /// Refuse to sweep more addresses than this (a guard against typos such as /8 for /24).
    #[arg(long, default_value_t = 1 << 24, value_name = "N")]
    pub max_addresses: u128,

    /// Ports to probe; 465 is implicit TLS.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "25",
        value_name = "PORTS"
    )]
    pub ports: Vec<u16>,
    /// Most discovery connections in flight (also bounded by the open-file limit).
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub concurrency: usize,
    /// Most hosts audited at once (each with up to --sessions-per-host connections; lowered to
    /// fit a quarter of the open-file limit).
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub audit_concurrency: usize,
    /// New connections per second, all stages together (0 = unlimited).
    #[arg(long, default_value_t = 1000.0, value_name = "PER_SECOND")]
    pub rate: f64,
    /// Seconds to wait for a TCP connect before calling the port filtered.
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS")]
    pub connect_timeout: f64,
    /// How often a silent port is tried again (a lost SYN must not lose a host).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub retries: u32,
    /// Seconds to wait for each SMTP reply.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub command_timeout: f64,
    /// Seconds the whole audit of one port may take.
    #[arg(long, default_value_t = 180.0, value_name = "SECONDS")]
    pub host_deadline: f64,
    /// Sessions one host may have open at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub sessions_per_host: usize,
    /// Tests per session before a fresh one (Postfix slows down after 10 errors); the relay
    /// vectors are dealt evenly over as few sessions as hold them.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub tests_per_session: usize,
    /// Seconds after a greylisting deferral before the deferred tests are tried again with the
    /// same envelope (0 = never); the host's deadline is moved for that retry only.
    #[arg(long, default_value_t = 310.0, value_name = "SECONDS")]
    pub greylist_wait: f64,
    /// Send every relay vector even to a host already proven an open relay (a plainly external
    /// recipient accepted); by default the rest are listed as not run.
    #[arg(long)]
    pub all_vectors: bool,

    /// Local address to connect from. Relay verdicts depend on the vantage point: a server
    /// trusts its own networks, so sweep from an address outside them.
    #[arg(long, value_name = "ADDR")]
    pub source: Option<IpAddr>,
    /// Name to give in EHLO/HELO.
    #[arg(long, default_value = "relayguard.invalid", value_name = "NAME")]
    pub ehlo_name: String,
    /// Third-party domain used in the relay tests. It should resolve (some servers refuse
    /// senders or recipients at unresolvable domains); relayguard never sends DATA to it.
    #[arg(long, default_value = "example.com", value_name = "DOMAIN")]
    pub external_domain: String,
    /// Extra domains the hosts receive mail for, tried in the backscatter test.
    #[arg(long, value_name = "DOMAIN")]
    pub local_domain: Vec<String>,
    /// Local part of the probe sender.
    #[arg(long, default_value = "relayguard-probe", value_name = "LOCALPART")]
    pub probe_sender: String,
    /// Local part of the probe recipient at the external domain.
    #[arg(long, default_value = "relayguard-test", value_name = "LOCALPART")]
    pub probe_recipient: String,
    /// Extra trusted CA certificates (PEM) for checking server certificates, e.g. a campus CA.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Vec<PathBuf>,
    /// DNS server(s) for the reverse-DNS and blocklist checks, ADDR or ADDR:PORT (repeatable;
    /// default: the system's resolvers).
    #[arg(long, value_name = "ADDR:PORT")]
    pub resolver: Vec<String>,
    /// DNS blocklist zone to look every SMTP host up in (repeatable; none by default).
    #[arg(long, value_name = "ZONE")]
    pub dnsbl: Vec<String>,
    /// Add the mail servers and hosts of a DNS zone to the targets: the A/AAAA of its MX targets
    /// and of the zone itself, and, where a server allows it, everything a zone transfer lists
    /// (repeatable). The way to reach IPv6 hosts that cannot be swept.
    #[arg(long, value_name = "ZONE")]
    pub from_dns: Vec<String>,
    /// Servers to ask for zone transfers (default: the zone's NS hosts).
    #[arg(long, value_name = "ADDR:PORT")]
    pub axfr_server: Vec<String>,
    /// Never try zone transfers for --from-dns.
    #[arg(long)]
    pub no_axfr: bool,
    /// Where zone serials are remembered, so unchanged zones are not transferred again
    /// (default: dns-serials.json in relayguard's data directory).
    #[arg(long, value_name = "FILE")]
    pub dns_state: Option<PathBuf>,
    /// Check the MX records of a campus zone: targets that do not answer SMTP, or not over the
    /// IPv6 they publish (repeatable).
    #[arg(long, value_name = "ZONE")]
    pub zone: Vec<String>,
    /// Skip the DNS checks (PTR, forward-confirmed reverse DNS, generic PTR, blocklists).
    #[arg(long)]
    pub no_dns: bool,
    /// Prove relays by delivery: after the sweep, send one message per distinct accepted or
    /// suspected relay vector form (at most --confirm-max per host) through the host to a canary
    /// address that routes to --confirm-sink. The only mode in which relayguard sends DATA.
    #[arg(long, requires = "confirm_sink")]
    pub confirm: bool,
    /// The receiving SMTP sink relayguard runs itself for --confirm, ADDR:PORT; ADDR must be one
    /// of this machine's own addresses, reachable from the audited hosts.
    #[arg(long, value_name = "ADDR:PORT", requires = "confirm")]
    pub confirm_sink: Option<std::net::SocketAddr>,
    /// Domain of the canary address, whose MX you point at the sink (default: the sink's address
    /// literal, e.g. rg-confirm-…@[192.0.2.10]).
    #[arg(long, value_name = "DOMAIN", requires = "confirm")]
    pub confirm_domain: Option<String>,
    /// Most confirmation messages sent through one host.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub confirm_max: usize,
    /// Seconds to wait for the confirmation messages to arrive at the sink.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub confirm_wait: f64,
    /// `--rules DIR`, a global flag of [`Cli`] copied here so the sweep sees it beside its own.
    #[arg(skip)]
    pub rules: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the output here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Report closed and filtered ports too, not only open ones.
    #[arg(long)]
    pub all: bool,
    /// Do not record the sweep in the registry database.
    #[arg(long)]
    pub no_store: bool,
    /// Post the sweep to this remote registry (https://HOST:PORT) instead of the local database.
    #[arg(long, value_name = "URL")]
    pub registry: Option<String>,
    /// Admin token for --registry (default: $RELAYGUARD_TOKEN; a flag is visible to other users
    /// in the process list, the environment is not).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// CA certificate (PEM) to trust for --registry instead of the system store.
    #[arg(long, value_name = "FILE")]
    pub registry_ca: Option<PathBuf>,
    /// Name of this vantage point, recorded with the sweep. With --queue, repeatable: the sweep
    /// is planned once for each vantage, and only workers started with that --vantage take it.
    #[arg(long, default_value = "local", value_name = "NAME")]
    pub vantage: Vec<String>,
    /// Do not sweep here: record the sweep in the registry (PostgreSQL) and split it into shards
    /// for `relayguard worker` processes to sweep (see docs/scaling.md).
    #[arg(long, conflicts_with_all = ["registry", "no_store", "list_targets", "discover_only", "zone", "from_dns"])]
    pub queue: bool,
    /// With --queue (and in schedules): addresses per shard, the unit a worker claims.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub shard_size: u128,
    /// Never show a progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}
