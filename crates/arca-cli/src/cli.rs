//! The command line, as clap types. Help texts teach: each says what the command is for.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const ABOUT: &str = "Encrypted, deduplicated, verifiable backups";
const LONG_ABOUT: &str = "arca keeps the history of files in a repository that is deduplicated \
(content-defined chunks), compressed, and encrypted and authenticated on this machine: the storage \
never sees the key, and a tampered byte is always caught. Every snapshot is a full, independent \
restore point.

Quick start (no set-up needed):
  arca backup ~/Documents          # backs up into a default repository under $XDG_DATA_HOME/arca
  arca snapshots                   # lists what you have
  arca restore latest --target /tmp/restored

With your own repository:
  export ARCA_REPOSITORY=/srv/backup/repo ARCA_PASSWORD_FILE=~/.arca-pass
  arca init && arca backup /etc /home";

/// Top-level options, valid for every command.
#[derive(Parser, Debug)]
#[command(name = "arca", version, about = ABOUT, long_about = LONG_ABOUT, after_help = crate::exit::HELP)]
pub struct Cli {
    /// Repository location: a directory path, ssh://[user@]host[:port]/path (runs
    /// `arca serve --stdio` there), sftp://[user@]host[:port]/path, s3://bucket/prefix
    /// (credentials from AWS_*), ftp[s]://[user@]host[:port]/path (password from
    /// ARCA_FTP_PASSWORD) or webdav[s]://[user@]host[:port]/path (ARCA_WEBDAV_PASSWORD).
    /// Without it, the default repository under $XDG_DATA_HOME/arca/ is used.
    #[arg(short = 'r', long = "repo", env = "ARCA_REPOSITORY", global = true, help_heading = "Global options")]
    pub repo: Option<String>,
    /// Read the password from this file (first line). ARCA_PASSWORD gives the password itself.
    #[arg(long, env = "ARCA_PASSWORD_FILE", global = true, help_heading = "Global options", hide_env_values = true)]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use its output as the password.
    #[arg(long, env = "ARCA_PASSWORD_COMMAND", global = true, help_heading = "Global options", hide_env_values = true)]
    pub password_command: Option<String>,
    /// Machine-readable output: JSON documents, or JSON lines for long commands.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// Print only errors, warnings and requested listings.
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,
    /// More log output (-v, -vv); ARCA_LOG=debug also works.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Global options")]
    pub verbose: u8,
    /// When another exclusive session (prune, repair index) holds the repository, wait up to
    /// this long for it (e.g. 30s, 10m) instead of failing at once.
    #[arg(long, global = true, help_heading = "Global options", value_name = "DURATION")]
    pub retry_lock: Option<String>,
    /// The local cache directory (default $XDG_CACHE_HOME/arca, ~/.cache/arca).
    #[arg(long, env = "ARCA_CACHE_DIR", global = true, help_heading = "Global options", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Keep the whole index in memory instead of the local cache ($XDG_CACHE_HOME/arca).
    #[arg(long, global = true, help_heading = "Global options")]
    pub no_cache: bool,
    /// The config file of repositories and jobs (default $XDG_CONFIG_HOME/arca/arca.toml,
    /// /etc/arca/arca.toml for root).
    #[arg(long, env = "ARCA_CONFIG", global = true, help_heading = "Global options", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Worker threads for compression and encryption (default: all cores).
    #[arg(long, env = "ARCA_THREADS", global = true, help_heading = "Global options")]
    pub threads: Option<usize>,
    /// Endpoint of an S3-compatible store for s3:// repositories (else AWS_ENDPOINT_URL, else AWS).
    #[arg(long, global = true, help_heading = "Global options", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Read back every object after storing it and compare it with what was sent: for media
    /// or servers that may acknowledge bytes they did not keep. One read per write.
    #[arg(long, global = true, help_heading = "Global options")]
    pub verify_after_write: bool,
    /// Limit uploads to this many KiB/s (remote repositories).
    #[arg(long, env = "ARCA_LIMIT_UPLOAD", global = true, help_heading = "Global options", value_name = "KIB_PER_S")]
    pub limit_upload: Option<u32>,
    /// Limit downloads to this many KiB/s (remote repositories).
    #[arg(long, env = "ARCA_LIMIT_DOWNLOAD", global = true, help_heading = "Global options", value_name = "KIB_PER_S")]
    pub limit_download: Option<u32>,
    /// Requests in flight at once to a remote repository: pack uploads during a backup, and
    /// for ssh:// the number of ssh sessions opened (each runs `arca serve`; use keys or a
    /// ControlMaster so the extra sessions do not ask for a password). 1: one at a time.
    #[arg(long, env = "ARCA_CONNECTIONS", global = true, help_heading = "Global options", value_name = "N",
          default_value_t = arca_backends::DEFAULT_CONNECTIONS as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub connections: u16,
    /// Seconds before a stalled remote connection is dropped and its request retried: for
    /// ssh:// and sftp:// a connection silent that long (ssh's keep-alives; also the connect
    /// timeout); for s3://, ftp:// and webdav:// the time one read or write call may take,
    /// times --connections (the uploads share the link), more under --limit-upload.
    #[arg(long, env = "ARCA_IO_TIMEOUT", global = true, help_heading = "Global options", value_name = "SECONDS",
          default_value_t = arca_backends::DEFAULT_IO_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub io_timeout: u64,
    /// The ssh program and options for ssh:// and sftp:// repositories, e.g. "ssh -i ~/.ssh/backup".
    #[arg(long, env = "ARCA_SSH_COMMAND", global = true, help_heading = "Global options", default_value = "ssh")]
    pub ssh_command: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new repository.
    #[command(
        after_help = "Examples:\n  arca -r /srv/backup/repo init\n  arca -r sftp://backup@nas/srv/arca init --parity 10\n  arca -r s3://bucket/host1 --s3-endpoint http://minio:9000 init"
    )]
    Init(InitArgs),
    /// Back up files and directories (or standard input, or a command's output).
    #[command(
        after_help = "Examples:\n  arca backup ~/Documents ~/Projects --exclude target/ --exclude-caches\n  arca backup -n -v /etc                       # list what would be stored, store nothing\n  pg_dump db | arca backup --stdin --stdin-filename db.sql\n  arca backup --stdin-from-command --stdin-filename db.sql -- pg_dump db"
    )]
    Backup(BackupArgs),
    /// List snapshots.
    #[command(
        after_help = "Examples:\n  arca snapshots\n  arca snapshots --host web01 --path /etc\n  arca --json snapshots | jq -r '.[].id'"
    )]
    Snapshots(SnapshotsArgs),
    /// List the files in a snapshot.
    #[command(after_help = "Examples:\n  arca ls latest --path /etc /etc/nginx -l\n  arca ls 3f2a9c1e")]
    Ls(LsArgs),
    /// Restore a snapshot, or part of it, into a directory.
    #[command(
        after_help = "Examples:\n  arca restore latest --path /etc --target /tmp/etc\n  arca restore 3f2a9c1e:/etc/nginx --target /etc/nginx --delete --dry-run\n  arca restore --at \"2026-11-01 12:00\" :/home/ann --target /tmp/ann"
    )]
    Restore(RestoreArgs),
    /// Write one file from a snapshot to standard output.
    #[command(after_help = "Examples:\n  arca dump latest /etc/fstab > fstab\n  arca dump 3f2a9c1e /db.sql | psql db")]
    Dump(DumpArgs),
    /// Write a snapshot (or part of it) as a tar or zip archive that plain tools restore.
    #[command(
        after_help = "Examples:\n  arca export latest:/home/ann | tar -tv\n  arca export 3f2a9c1e:/srv -o srv.zip --format zip --verify\n  arca export latest --tape -o /dev/nst0          # header record, then tar; dd and tar restore it"
    )]
    Export(ExportArgs),
    /// What changed: between two snapshots, or between a snapshot and the files on disk.
    #[command(
        after_help = "Examples:\n  arca diff 3f2a9c1e 7b1d0e44\n  arca diff latest /etc                      # against the files on disk"
    )]
    Diff(DiffArgs),
    /// Which snapshots hold a file: by name or path pattern.
    #[command(after_help = "Examples:\n  arca find nginx.conf\n  arca find '/etc/**/*.conf'")]
    Find(FindArgs),
    /// Remove snapshots by policy (or by id), listing why each one stays.
    #[command(
        after_help = "Examples:\n  arca forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run\n  arca forget --keep-within 30d --prune\n  arca forget 3f2a9c1e"
    )]
    Forget(ForgetArgs),
    /// Add, remove or set the tags of snapshots (their old ids keep selecting them).
    #[command(
        after_help = "Examples:\n  arca tag --add keep 3f2a9c1e\n  arca tag --host web01 --remove nightly --add weekly\n  arca tag --set release-1.2 latest"
    )]
    Tag(TagArgs),
    /// Rewrite snapshots without the entries matching --exclude (a secret backed up by
    /// mistake); the originals stay unless --forget. Then `arca prune` removes the data.
    #[command(
        after_help = "Examples:\n  arca rewrite --exclude '/home/*/.env' --dry-run\n  arca rewrite --exclude '*.pem' --forget 3f2a9c1e && arca prune"
    )]
    Rewrite(RewriteArgs),
    /// Protect snapshots from forget until a date, or set the date by which they must go.
    #[command(
        after_help = "Examples:\n  arca protect 3f2a9c1e --until 2030-01-01\n  arca protect latest --until forever"
    )]
    Protect(ProtectArgs),
    /// Reclaim space: delete packs no snapshot needs and repack wasteful ones. Safe while
    /// backups run: packs are first marked (backups stop using them), then swept once every
    /// session that might still rely on them has ended.
    #[command(after_help = "Examples:\n  arca prune --dry-run\n  arca prune --max-unused 10%")]
    Prune(PruneArgs),
    /// Copy snapshots from another repository into this one. Only blobs this repository lacks
    /// move; data is re-encrypted with this repository's key. Run again to resume.
    #[command(
        after_help = "Examples:\n  arca -r /mnt/usb/repo copy --from-repo /srv/backup/repo --from-password-file ~/.pw-main\n  arca -r s3://bucket/offsite copy --from-repo ssh://backup@nas/srv/arca --host web01"
    )]
    Copy(CopyArgs),
    /// Show snapshots as a read-only filesystem (FUSE) until Ctrl-C or `fusermount3 -u`.
    #[command(
        after_help = "Examples:\n  mkdir -p /mnt/arca && arca mount /mnt/arca\n  arca mount --host web01 /mnt/arca"
    )]
    Mount(MountArgs),
    /// Verify that a snapshot was signed by a host, with only its public key: no password.
    ///
    /// The signature covers the snapshot's stored bytes (and so its root tree id and all it names),
    /// the repository's id, and the host's chain of statements up to it (docs/SECURITY.md).
    #[command(
        name = "verify-signature",
        after_help = "Examples:\n  arca verify-signature 3f2a9c1e --pubkey web01.pub\n  arca -r sftp://audit@nas/srv/arca verify-signature 3f2a9c1e --pubkey web01.pub --json"
    )]
    VerifySignature(VerifySignatureArgs),
    /// Convert a format-version-1 repository to version 2, in place (classes and numbered
    /// keys need it). Nothing is rewritten: one new key object, then the config. Afterwards
    /// arca versions before 2 cannot open the repository.
    ///
    /// A kill at any point leaves a repository that opens: version 1 before the config is
    /// replaced, version 2 after; running it again finishes.
    #[command(after_help = "Examples:\n  arca upgrade --dry-run\n  arca upgrade")]
    Upgrade {
        /// Say what would change; change nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
    /// Verify the repository's structure and, optionally, every byte of data.
    #[command(after_help = "Examples:\n  arca check\n  arca check --read-data-subset 5%\n  arca check --read-data")]
    Check(CheckArgs),
    /// Manage the passwords (key slots) that open the repository.
    #[command(
        after_help = "Examples:\n  arca key list\n  ARCA_NEW_PASSWORD_FILE=~/.pw-new arca key add --label laptop\n  arca key add --backup-only --host web01 --label web01\n  arca key add --metadata-only --label auditor     # names and sizes, no contents\n  arca key add --summary-only --label dashboard    # hosts, times, sizes\n  arca key passwd"
    )]
    #[command(subcommand)]
    Key(KeyCommand),
    /// Archive one WAL file into the repository: PostgreSQL's archive_command. Safe to run
    /// twice (the same file succeeds without storing anything); a different file under a name
    /// archived already is refused.
    #[command(
        after_help = "Examples:\n  arca -r /srv/arca/db --password-file /etc/arca/pw wal-push pg_wal/000000010000000000000003\n\nIn postgresql.conf:\n  archive_mode = on\n  archive_command = 'arca -r /srv/arca/db --password-file /etc/arca/pw wal-push %p'"
    )]
    WalPush {
        /// The file (PostgreSQL's %p).
        path: PathBuf,
        /// The cluster (default: read from the segment, or from the data directory
        /// PostgreSQL runs the command in).
        #[arg(long, value_name = "ID")]
        system_identifier: Option<String>,
    },
    /// Fetch one archived WAL file: PostgreSQL's restore_command (exits 1 if the archive does
    /// not have it, which ends recovery there).
    #[command(
        after_help = "Examples:\n  arca -r /srv/arca/db --password-file /etc/arca/pw wal-fetch 000000010000000000000003 /tmp/seg\n\nIn postgresql.conf (db pitr writes it):\n  restore_command = 'arca -r /srv/arca/db --password-file /etc/arca/pw wal-fetch %f %p'"
    )]
    WalFetch {
        /// The file's name (PostgreSQL's %f).
        name: String,
        /// Where to write it (PostgreSQL's %p).
        target: PathBuf,
        /// The cluster (default: read from the data directory PostgreSQL runs the command in).
        #[arg(long, value_name = "ID")]
        system_identifier: Option<String>,
    },
    /// Databases: back up PostgreSQL, MariaDB and SQLite through their own tools (a
    /// consistent dump while they run, streamed into one snapshot), list and restore them.
    #[command(
        after_help = "Examples:\n  arca db backup postgres                          # every database, and the roles\n  arca db backup postgres -d app --db-port 5433\n  arca db backup mariadb --db-socket /run/mysqld/mysqld.sock\n  arca db backup sqlite /srv/app/app.db\n  arca db list latest\n  arca db restore latest -d app --into app_restored --create\n  arca db restore latest --engine sqlite -d /srv/app/app.db --target /tmp/app.db"
    )]
    #[command(subcommand)]
    Db(DbCommand),
    /// btrfs snapshot sets: push the read-only subvolumes of a directory (what btrbk, snapper
    /// or a cron job makes) into the repository, list them with their sizes on either side,
    /// and pull them onto another btrfs filesystem as read-only subvolumes that share their
    /// unchanged files' extents.
    #[command(
        after_help = "Examples:\n  arca btrfs push /mnt/pool/snaps           # every read-only subvolume not yet stored\n  arca btrfs push /mnt/pool/snaps --dry-run --delete\n  arca btrfs list /mnt/pool/snaps\n  arca btrfs pull /mnt/backup/snaps          # recreate them, oldest first\n  arca btrfs pull /mnt/backup/snaps --set /mnt/pool/snaps --host nas --member daily-2026-12-07"
    )]
    #[command(subcommand)]
    Btrfs(BtrfsCommand),
    /// Print a POSIX sh script that rebuilds a machine from its description (a snapshot made by
    /// `backup --system`): partition tables, filesystems with their UUIDs, labels and
    /// parameters, mounts, the files (restored with arca from a files snapshot), the
    /// bootloader. Run it from any live system with --dry-run first; it says what it destroys
    /// and asks before it does.
    #[command(
        after_help = "Examples:\n  arca recovery-script latest --host web1 -o recover.sh   # web1's newest description\n  arca recovery-script 3f2a9c1e --map /dev/sda=/dev/nvme0n1 --files 9c1e3f2a > recover.sh\n  sh recover.sh --dry-run; sh recover.sh --confirm"
    )]
    RecoveryScript {
        /// The system snapshot (an id prefix, or `latest` with --path ROOT).
        snapshot: String,
        /// Use disk NEW where the machine had OLD (repeatable).
        #[arg(long = "map", value_name = "OLD=NEW")]
        map: Vec<String>,
        /// The files snapshot to restore (default: the files snapshot of the same host and
        /// root taken closest in time to the description, before or after it).
        #[arg(long)]
        files: Option<String>,
        /// Write the script here (default: standard output).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Audits: packaged files against the sums their packages were installed with, on this
    /// system or in a snapshot (`packages`), and this system against a snapshot by content
    /// (`against`). Exit 4 when something differs, so a job can alert on it.
    #[command(
        after_help = "Examples:\n  arca audit packages --live                 # like debsums, in parallel, plus unowned executables\n  arca audit packages latest                 # the same inside the latest snapshot of /\n  arca audit against 3f2a9c1e:/usr           # what changed under /usr since that snapshot, by content"
    )]
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Show sizes: what a restore would write, or what the snapshots store.
    #[command(after_help = "Examples:\n  arca stats latest\n  arca stats --mode raw-data")]
    Stats(StatsArgs),
    /// Show a repository object decoded, as JSON (for debugging).
    #[command(after_help = "Examples:\n  arca cat config\n  arca cat snapshot 3f2a9c1e")]
    Cat(CatArgs),
    /// Repair the repository.
    #[command(after_help = "Examples:\n  arca repair index\n  arca repair snapshots --dry-run\n  arca repair packs")]
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Serve a repository on stdin/stdout for ssh:// clients, enforcing a mode. This is what
    /// an SSH forced command runs, e.g. in authorized_keys:
    /// command="arca serve --stdio --repo /srv/arca/web01 --mode append",restrict ssh-ed25519 ...
    #[command(after_help = "Examples:\n  arca serve --stdio --repo /srv/arca/web01 --mode append")]
    Serve(ServeArgs),
    /// Run jobs from the config file: hooks, backup, copies to replicas, retention on each
    /// repository, check. --dry-run prints the command lines instead: pasted into a shell,
    /// they do what the run does.
    #[command(
        after_help = "Examples:\n  arca run home\n  arca run --all\n  arca run home --dry-run > home.sh\n  arca --config ./arca.toml run --all --json"
    )]
    Run(RunArgs),
    /// Show each job's state (ok, late, failed, never run) from its run history and its
    /// repository, as text, JSON, a Nagios line or a Prometheus textfile.
    ///
    /// Exit codes are Nagios': 0 all ok, 1 a job is late or could not read some files, 2 a
    /// job failed or never ran.
    #[command(
        after_help = "Examples:\n  arca status\n  arca status --nagios                          # for check_by_ssh / NRPE\n  arca status --offline --json | jq -r '.jobs[].state'\n  arca status --prometheus /var/lib/prometheus/node-exporter/arca.prom"
    )]
    Status(StatusArgs),
    /// Run jobs on their schedules: systemd timers (or cron lines), and when they run next.
    #[command(
        subcommand,
        after_help = "Examples:\n  arca schedule show\n  arca schedule install --all\n  arca schedule install home --dir ./units --no-enable\n  arca schedule cron >> /etc/cron.d/arca"
    )]
    Schedule(ScheduleCommand),
    /// Answer snmpd's pass_persist requests with job status (see docs/ARCA-MIB.txt).
    ///
    /// In snmpd.conf: `pass_persist .1.3.6.1.4.1.8072.9999.9999.7 /usr/local/bin/arca --config
    /// /etc/arca/arca.toml snmp`. Answers come from the run history and the repository figures
    /// the last run stored; no repository is opened.
    #[command(
        after_help = "Examples:\n  snmpwalk -v2c -c public localhost .1.3.6.1.4.1.8072.9999.9999.7\n  printf 'PING\\nget\\n.1.3.6.1.4.1.8072.9999.9999.7.1.0\\n' | arca snmp"
    )]
    Snmp,
    /// Work with the config file of repositories and jobs.
    #[command(subcommand, after_help = "Examples:\n  arca config check\n  arca config path")]
    Config(ConfigCommand),
    /// List the local caches of repositories, and remove those not used for a while.
    #[command(after_help = "Examples:\n  arca cache\n  arca cache --cleanup\n  arca cache --cleanup --max-age 7")]
    Cache(CacheArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Examples:\n  arca completions bash > /etc/bash_completion.d/arca\n  arca completions zsh > \"${fpath[1]}/_arca\"\n  arca completions fish > ~/.config/fish/completions/arca.fish"
    )]
    Completions { shell: clap_complete::Shell },
    /// Write man pages for arca and every command into a directory.
    #[command(
        after_help = "Examples:\n  arca man /usr/local/share/man/man1 && mandb -q\n  arca man ./man && man -l man/arca-backup.1"
    )]
    Man {
        /// Where to write arca.1, arca-backup.1, …
        dir: PathBuf,
    },
    /// Tools for benchmarks and development.
    #[command(subcommand, hide = true)]
    Debug(DebugCommand),
}

#[derive(Subcommand, Debug)]
pub enum DebugCommand {
    /// Single-core throughput of hashing, compression and sealing, as JSON (MB/s).
    CpuBench,
    /// Add index objects describing BLOBS synthetic blobs in packs that do not exist, to
    /// measure start-up time and memory with a huge index. Only for throw-away repositories.
    SynthIndex {
        blobs: u64,
        /// Blobs per index object.
        #[arg(long, default_value_t = 1_000_000)]
        per_object: u64,
        /// Blobs per (fake) pack.
        #[arg(long, default_value_t = 5_000)]
        per_pack: u64,
    },
    /// Copy the latest snapshot COUNT times with times one hour apart (to measure listing).
    SynthSnapshots { count: u64 },
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Default zstd compression level (0 = off, 1 to 22).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(0..=22))]
    pub compression_level: i32,
    /// Authenticated encryption for the repository (`none`: authenticated, not encrypted).
    #[arg(long, value_enum, default_value_t = Encryption::Aes256GcmSiv)]
    pub encryption: Encryption,
    /// Average chunk size in KiB (min is half, max is eight times), 64 to 2048.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(64..=2048))]
    pub chunk_size_kib: u32,
    /// Target pack size in MiB, 1 to 1024.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub pack_size_mib: u64,
    /// Add Reed-Solomon parity to every pack, in percent of its size (e.g. 10): a damaged
    /// region up to that size inside a pack is repaired by `arca repair packs`.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=50), value_name = "PERCENT")]
    pub parity: u32,
    /// Repository format: 2 (classes, numbered keys, ADs that name the repository), or 1 for
    /// a repository that arca versions before 2 must read (no classes; `arca upgrade` later).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=2), value_name = "N")]
    pub format_version: u32,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Encryption {
    Aes256GcmSiv,
    Xchacha20Poly1305,
    /// No encryption: data is stored compressed and in the clear, every object still
    /// authenticated (keyed ids and tags), for public data where speed matters more than
    /// secrecy. Anyone who can read the storage reads the files.
    None,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Files and directories to back up.
    pub paths: Vec<PathBuf>,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Host name to record (default: this machine's).
    #[arg(long)]
    pub host: Option<String>,
    /// Leave out paths matching this glob; without a `/` it matches names anywhere (repeatable).
    #[arg(long = "exclude", short = 'e')]
    pub excludes: Vec<String>,
    /// Read exclude patterns from a file, one per line (repeatable).
    #[arg(long = "exclude-file")]
    pub exclude_files: Vec<PathBuf>,
    /// Like --exclude, but matching without regard to case (repeatable).
    #[arg(long = "iexclude")]
    pub iexcludes: Vec<String>,
    /// Read paths to back up from a file, one per line (`-` for standard input); blank lines
    /// and lines starting with `#` are skipped (repeatable).
    #[arg(long = "files-from", value_name = "FILE")]
    pub files_from: Vec<PathBuf>,
    /// Read paths separated by NUL bytes, as `find -print0` writes them (repeatable).
    #[arg(long = "files-from-raw", value_name = "FILE")]
    pub files_from_raw: Vec<PathBuf>,
    /// Read paths one per line, taking every line as it is (repeatable).
    #[arg(long = "files-from-verbatim", value_name = "FILE")]
    pub files_from_verbatim: Vec<PathBuf>,
    /// Leave out directories holding a valid CACHEDIR.TAG.
    #[arg(long)]
    pub exclude_caches: bool,
    /// Leave out directories holding a file of this name (repeatable).
    #[arg(long = "exclude-if-present")]
    pub exclude_if_present: Vec<String>,
    /// Do not cross into other filesystems.
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Record this time instead of now (RFC 3339, or "YYYY-MM-DD HH:MM:SS" local time).
    /// ARCA_BACKUP_TIME does the same for every backup of a job run (replays, tests).
    #[arg(long, env = "ARCA_BACKUP_TIME")]
    pub time: Option<String>,
    /// Compare against this snapshot instead of the latest of the same host and paths.
    #[arg(long)]
    pub parent: Option<String>,
    /// Read everything, store nothing, and report what would be added.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Compression: auto (the zstd level follows the bottleneck: it rises while uploads wait
    /// or the CPU has room, falls while the CPU is busy, between 1 and 9; incompressible data
    /// is stored as it is), off, or a fixed zstd level 1-22.
    #[arg(long, default_value = "auto")]
    pub compression: String,
    /// Confirm every deduplication hit byte for byte against the stored blob.
    #[arg(long)]
    pub paranoid_dedup: bool,
    /// Write into class NAME (created on first use): its own keys, deduplicated only within
    /// the class, so `arca key destroy-class NAME` later makes every byte of it unreadable
    /// without rewriting anything. Parents come from the same class.
    #[arg(long, value_name = "NAME")]
    pub class: Option<String>,
    /// Unchanged means same size, mtime and inode (ctime is not trusted).
    #[arg(long)]
    pub ignore_ctime: bool,
    /// Read every file, even those that look unchanged.
    #[arg(long)]
    pub rehash: bool,
    /// Files and directories read at the same time (I/O bound: more than the cores helps,
    /// most of all with a cold cache or a network filesystem).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub read_concurrency: u16,
    /// What to do with a running database's files found in the sources (a PostgreSQL
    /// cluster, a MariaDB data directory, an SQLite file with a live write-ahead log): warn
    /// (store them as read, and say which and how to back them up properly), skip (leave
    /// them out) or fail (store nothing). `arca db backup` backs them up consistently.
    #[arg(long, default_value = "warn", value_name = "warn|skip|fail")]
    pub live_databases: arca_fs::livedb::LiveDbPolicy,
    /// Take a read-only snapshot of each path's filesystem first (btrfs subvolume snapshot,
    /// LVM snapshot mounted read-only, ZFS snapshot), back up from it, and remove it after,
    /// also after a failure: the snapshot is one instant, not files changing while they are
    /// read. The snapshot records the original paths. A snapshot a killed run left is removed
    /// by the next run.
    #[arg(long, conflicts_with_all = ["stdin", "stdin_from_command"])]
    pub fs_snapshot: bool,
    /// How --fs-snapshot freezes a filesystem: auto (btrfs or ZFS by the filesystem, else LVM
    /// if the path is on a logical volume), btrfs, lvm or zfs.
    #[arg(long, default_value = "auto", value_name = "auto|btrfs|lvm|zfs", requires = "fs_snapshot")]
    pub fs_snapshot_method: arca_fsnap::freeze::Method,
    /// Store a full `btrfs send` stream of this subvolume as one snapshot (split into its
    /// commands and its data, so a second full stream of a little-changed subvolume costs
    /// about the change). `arca restore
    /// --btrfs-receive DIR` gives it to `btrfs receive`. A writable subvolume is sent from a
    /// read-only snapshot taken for it.
    #[arg(long, value_name = "SUBVOLUME", conflicts_with_all = ["paths", "stdin", "stdin_from_command", "fs_snapshot"])]
    pub btrfs_send: Option<PathBuf>,
    /// Describe the machine instead of backing up files: disks and partition tables,
    /// filesystems with their UUIDs, labels and parameters, mounts, RAID, LVM, LUKS, the boot
    /// configuration, installed packages and directory sizes, as text and JSON in a snapshot
    /// of kind system (`arca recovery-script` turns it into a bare-metal recovery script).
    /// Back up the files too, in their own snapshot.
    #[arg(long, conflicts_with_all = ["paths", "stdin", "stdin_from_command", "btrfs_send", "fs_snapshot"])]
    pub system: bool,
    /// With --system: a disk (device or image file) to describe (repeatable; default: every
    /// disk in /sys/block).
    #[arg(long = "disk", value_name = "PATH", requires = "system")]
    pub disks: Vec<PathBuf>,
    /// With --system: the machine's / (a mounted disk, a chroot; default /).
    #[arg(long, value_name = "DIR", default_value = "/", requires = "system")]
    pub system_root: PathBuf,
    /// With --system: keep each LUKS container's header too (`cryptsetup luksHeaderBackup`,
    /// in luks/ of the snapshot). It opens with the passphrases of the time: keep such
    /// snapshots in a class you can destroy (--class).
    #[arg(long, requires = "system")]
    pub luks_headers: bool,
    /// With --system: directory levels below each mount whose sizes are recorded.
    #[arg(long, value_name = "N", default_value_t = 3, requires = "system")]
    pub usage_depth: usize,
    /// Back up standard input as one file.
    #[arg(long, conflicts_with_all = ["paths", "stdin_from_command"])]
    pub stdin: bool,
    /// File name for --stdin / --stdin-from-command data.
    #[arg(long, default_value = "stdin")]
    pub stdin_filename: String,
    /// Run a command and back up its standard output; if it fails, no snapshot is made. The
    /// snapshot records the command line (`arca cat snapshot`): keep secrets out of it.
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "CMD")]
    pub stdin_from_command: Option<Vec<String>>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only snapshots of this host (repeatable).
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Only snapshots with this tag (repeatable: all must match).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only snapshots that include this path (repeatable).
    #[arg(long = "path")]
    pub paths: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CacheArgs {
    /// Remove caches not used for --max-age days.
    #[arg(long)]
    pub cleanup: bool,
    /// Days a cache may go unused before --cleanup removes it.
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pub max_age: u64,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// Snapshots (id prefixes, `latest`); without any, all that match the filters.
    pub snapshots: Vec<String>,
    /// Add this tag (repeatable).
    #[arg(long)]
    pub add: Vec<String>,
    /// Remove this tag (repeatable).
    #[arg(long)]
    pub remove: Vec<String>,
    /// Replace all tags with these (repeatable).
    #[arg(long)]
    pub set: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct RewriteArgs {
    /// Snapshots (id prefixes, `latest`); without any, all that match the filters.
    pub snapshots: Vec<String>,
    /// Leave out entries matching this glob, as backup's --exclude does (repeatable).
    #[arg(long = "exclude", short = 'e', required_unless_present = "iexcludes")]
    pub excludes: Vec<String>,
    /// Like --exclude, without regard to case (repeatable).
    #[arg(long = "iexclude")]
    pub iexcludes: Vec<String>,
    /// Remove the original snapshots once their rewritten copies are saved.
    #[arg(long)]
    pub forget: bool,
    /// List what would be removed; change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only the newest N snapshots of each host and path set.
    #[arg(long)]
    pub latest: Option<usize>,
    /// List the snapshots in groups: any of host, paths, tags, comma-separated.
    #[arg(long, value_name = "host,paths,tags")]
    pub group_by: Option<String>,
    /// Show who signed each snapshot into the history (user@host and key fingerprint, or
    /// "unsigned"); reads every history statement.
    #[arg(long)]
    pub signers: bool,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot id prefix, `latest`, or `latest~N` (the N-th before it).
    pub snapshot: String,
    /// Only below this path inside the snapshot.
    pub path: Option<String>,
    /// Long listing: type, mode, owner, size, time.
    #[arg(short = 'l', long)]
    pub long: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// SNAPSHOT or SNAPSHOT:PATH (a snapshot id prefix or `latest`, and a path inside it).
    /// With --at, give only `:PATH` (or nothing for the whole snapshot).
    pub snapshot: Option<String>,
    /// Restore the newest snapshot at or before this time ("2026-11-01 12:00", RFC 3339),
    /// among those matching --host/--tag/--path.
    #[arg(long)]
    pub at: Option<String>,
    /// What to do with files already in the target: keep those whose contents match
    /// (if-changed, the default: an interrupted restore resumes), replace all, or keep all.
    #[arg(long, value_enum, default_value_t = OverwriteMode::IfChanged)]
    pub overwrite: OverwriteMode,
    /// Remove files in restored directories that the snapshot does not have (each is
    /// listed; try it with --dry-run first).
    #[arg(long)]
    pub delete: bool,
    /// Change nothing: count what would be restored, kept and deleted, and list deletions.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Do not warn about metadata the target filesystem cannot hold (owners, xattrs, ...).
    #[arg(long)]
    pub no_warn_metadata: bool,
    /// Directory to restore into (created if missing).
    #[arg(long, short = 't', required_unless_present = "btrfs_receive")]
    pub target: Option<PathBuf>,
    /// Clone every file whose contents equal the file at the same path in DIR (an earlier
    /// restore, on the same btrfs or XFS filesystem) instead of writing it: each restored
    /// snapshot is a plain directory, and together they take about the space of one plus the
    /// changes. Contents are compared by reading DIR's files, not by their times.
    #[arg(long, value_name = "DIR")]
    pub reflink_from: Option<PathBuf>,
    /// Give the btrfs send stream a snapshot holds (`backup --btrfs-send`) to `btrfs receive
    /// DIR`, which makes the subvolume there; `-` writes the stream to standard output.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["target", "reflink_from", "delete", "includes", "excludes", "at"])]
    pub btrfs_receive: Option<PathBuf>,
    /// Restore only paths matching this glob, and what lies below them (repeatable).
    #[arg(long = "include", short = 'i')]
    pub includes: Vec<String>,
    /// Skip paths matching this glob (repeatable).
    #[arg(long = "exclude", short = 'e')]
    pub excludes: Vec<String>,
    /// Read every restored file back and check it against the snapshot.
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum OverwriteMode {
    Always,
    IfChanged,
    Never,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The older snapshot.
    pub first: String,
    /// The newer snapshot, or a path on disk (absolute or containing `/`) to compare with.
    pub second: String,
    /// Only below this path (snapshot against snapshot).
    pub path: Option<String>,
    /// Against disk: read files again and compare contents, not only metadata (finds files
    /// whose contents changed while size and mtime did not).
    #[arg(long)]
    pub content: bool,
    /// Against disk: also leave out files matching this glob (the snapshot's own excludes
    /// always apply).
    #[arg(long = "exclude", short = 'e')]
    pub excludes: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct FindArgs {
    /// Glob: matched against the name, or against the whole path if it contains `/`.
    pub pattern: String,
    /// Search only these snapshots (repeatable).
    #[arg(long = "snapshot")]
    pub snapshots: Vec<String>,
    /// Search only the newest N snapshots (a number), or those taken at or after a date
    /// (as restic's --newest).
    #[arg(long, value_name = "N|DATE")]
    pub newest: Option<String>,
    /// Search only snapshots taken at or before this date.
    #[arg(long, value_name = "DATE")]
    pub oldest: Option<String>,
    /// Match the pattern without regard to case.
    #[arg(long, short = 'i')]
    pub ignore_case: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Snapshots to remove by id (refused if protected). Without ids, the policy decides.
    pub snapshots: Vec<String>,
    /// Keep the N newest snapshots.
    #[arg(long, default_value_t = 0)]
    pub keep_last: usize,
    /// Keep the newest snapshot of each of the N most recent hours that have one.
    #[arg(long, default_value_t = 0)]
    pub keep_hourly: usize,
    /// … days (local time).
    #[arg(long, default_value_t = 0)]
    pub keep_daily: usize,
    /// … ISO weeks.
    #[arg(long, default_value_t = 0)]
    pub keep_weekly: usize,
    /// … months.
    #[arg(long, default_value_t = 0)]
    pub keep_monthly: usize,
    /// … years.
    #[arg(long, default_value_t = 0)]
    pub keep_yearly: usize,
    /// Keep everything newer than this before the newest snapshot of the group (e.g. 2y3m, 14d).
    #[arg(long)]
    pub keep_within: Option<String>,
    /// Keep snapshots with this tag (repeatable).
    #[arg(long = "keep-tag")]
    pub keep_tags: Vec<String>,
    /// Apply the policy per group of: host, paths, tags (comma-separated; "" for one group).
    #[arg(long, default_value = "host,paths")]
    pub group_by: String,
    /// Remove the snapshots whose destroy-after date has passed (see `arca protect`), and
    /// crypto-shred each class (`backup --class`) whose last snapshots that removes.
    #[arg(long, conflicts_with_all = ["snapshots"])]
    pub enforce_destroy: bool,
    /// Show what would be removed, remove nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Then prune: reclaim the space the removed snapshots held.
    #[arg(long)]
    pub prune: bool,
    /// A snapshot whose time differs by more than this from when an append-only server
    /// received it is kept, not counted, and reported as suspicious ("1d", "6h").
    #[arg(long, default_value = "1d", value_name = "DURATION")]
    pub max_clock_skew: String,
    #[command(flatten)]
    pub tuning: PruneTuning,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    // The repository to serve is the global --repo; without it, the client names one, which
    // must lie inside --restrict-to.
    /// Speak the protocol on stdin/stdout (the only transport so far; required).
    #[arg(long, required = true)]
    pub stdio: bool,
    /// What the client may do: read (list, restore, check), append (also add backups; never
    /// delete or overwrite), full (anything, e.g. forget and prune).
    #[arg(long, value_enum, default_value_t = ServeMode::Full)]
    pub mode: ServeMode,
    /// Serve only repositories inside this directory.
    #[arg(long, value_name = "DIR")]
    pub restrict_to: Option<std::path::PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ServeMode {
    Read,
    Append,
    Full,
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// The repository to copy from: a path or a URL (as for -r).
    #[arg(long, value_name = "REPO")]
    pub from_repo: String,
    /// The source repository's password, from a file (else ARCA_FROM_PASSWORD,
    /// ARCA_FROM_PASSWORD_FILE, or a prompt).
    #[arg(long, value_name = "FILE")]
    pub from_password_file: Option<std::path::PathBuf>,
    /// Snapshots to copy (id prefixes or `latest`); without them, all that pass the filters.
    pub snapshots: Vec<String>,
    /// Show what would be copied; copy nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Mirror: remove snapshots here (passing the same filters) that are not in the selection.
    #[arg(long)]
    pub delete: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Show the plan and its cost (bytes deleted, read and rewritten); change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    #[command(flatten)]
    pub tuning: PruneTuning,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check every file a Debian package installed against the MD5 sum dpkg recorded for it
    /// (conffiles aside, as debsums does), and list executables in bin and sbin directories
    /// that no package owns. On the live system (--live) or inside a snapshot of one
    /// (SNAPSHOT[:ROOT], ROOT being where the system's / is in the snapshot; default /). The
    /// sums come from the system audited: an intruder with root can rewrite them, so audit a
    /// snapshot from before, or compare with one (`arca audit against`).
    #[command(
        after_help = "Examples:\n  arca audit packages --live\n  arca audit packages latest --json\n  arca audit packages 3f2a9c1e:/srv/chroot"
    )]
    Packages {
        /// The snapshot (and the system's root in it) to audit.
        #[arg(required_unless_present = "live", conflicts_with = "live")]
        snapshot: Option<String>,
        /// Audit the running system.
        #[arg(long)]
        live: bool,
        /// The live system's root directory (a mounted disk, a chroot).
        #[arg(long, default_value = "/", requires = "live")]
        root: PathBuf,
        /// List every finding (default: the first 50 of each kind).
        #[arg(long)]
        all: bool,
        /// Check against the packages themselves instead of dpkg's MD5 lists on the system:
        /// each installed package's .deb is fetched with apt-get download (checked against
        /// the archive's signed index), and every file in it compared by SHA-256 (conffiles
        /// aside). An intruder who rewrote a binary and its MD5 line is found.
        #[arg(long)]
        archive: bool,
        /// With --archive: only this package (repeatable).
        #[arg(long = "package", value_name = "NAME", requires = "archive")]
        packages: Vec<String>,
        /// With --archive: where downloaded packages are kept (default: the cache directory's
        /// debs/).
        #[arg(long, value_name = "DIR", requires = "archive")]
        deb_cache: Option<PathBuf>,
    },
    /// Compare this system with a snapshot by content (a tripwire): every file the snapshot
    /// holds under PATH is read here and checked against the snapshot's blob ids (times are
    /// ignored), symlinks by target; entries on one side only are listed too.
    #[command(
        after_help = "Examples:\n  arca audit against latest:/etc\n  arca audit against 3f2a9c1e:/usr --root /mnt/suspect --json"
    )]
    Against {
        /// SNAPSHOT:PATH (PATH default /).
        snapshot: String,
        /// Where the snapshot's / is on this system (default /).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// List every difference (default: the first 50).
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BtrfsCommand {
    /// Back up every read-only subvolume in DIR that the repository does not hold yet, oldest
    /// first, each against the previous one (unchanged files are not read again). Each
    /// becomes one snapshot of DIR that records the subvolume's name, UUIDs and generation.
    #[command(
        after_help = "Examples:\n  arca btrfs push /mnt/pool/snaps\n  arca btrfs push /mnt/pool/snaps --delete --dry-run"
    )]
    Push {
        /// The directory holding the read-only subvolumes.
        dir: PathBuf,
        /// Show what would be pushed (and forgotten); store nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Forget the stored members (of this host's set DIR) that DIR no longer has (`arca
        /// prune` then frees their data). Refused if DIR holds none of them (not mounted?) or
        /// any snapshot cannot be read.
        #[arg(long)]
        delete: bool,
        /// Host name to record (default: this machine's).
        #[arg(long)]
        host: Option<String>,
        /// Tag the snapshots (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// List a set: the read-only subvolumes in DIR with btrfs's view of their sizes, and the
    /// repository's members with theirs (stored bytes; exclusive is what forgetting that
    /// member alone would free).
    #[command(
        after_help = "Examples:\n  arca btrfs list /mnt/pool/snaps\n  arca btrfs list --set /mnt/pool/snaps     # the repository side only\n  arca btrfs list /mnt/pool/snaps --local   # btrfs only, no repository"
    )]
    List {
        /// A directory of read-only subvolumes (either side).
        dir: Option<PathBuf>,
        /// The set in the repository (its directory on the pushing host; default: DIR, or the
        /// only set).
        #[arg(long)]
        set: Option<String>,
        /// The host that pushed the set (default: the only one with such a set).
        #[arg(long)]
        host: Option<String>,
        /// Only the local side: no repository is opened.
        #[arg(long, requires = "dir")]
        local: bool,
    },
    /// Recreate the set's members in DIR (on btrfs), oldest first: each starts as a snapshot
    /// of the previous one received, so unchanged files share extents, gets its member's UUID
    /// as received UUID (a later `btrfs send -p` from the original host finds it as a
    /// parent), and turns read-only under its name only when complete. An interrupted pull
    /// leaves NAME.arca-partial and the next pull finishes it.
    #[command(
        after_help = "Examples:\n  arca btrfs pull /mnt/backup/snaps\n  arca btrfs pull /mnt/backup/snaps --member daily-2026-12-07 --dry-run\n  arca btrfs pull /mnt/backup/snaps --delete"
    )]
    Pull {
        /// The directory (on btrfs) to receive into.
        dir: PathBuf,
        /// The set to pull (its directory on the pushing host; default: the only set).
        #[arg(long)]
        set: Option<String>,
        /// The host that pushed it (default: the only one with such a set).
        #[arg(long)]
        host: Option<String>,
        /// Only these members, by subvolume name (repeatable; default: every member DIR lacks).
        #[arg(long = "member", value_name = "NAME")]
        only: Vec<String>,
        /// Show what would be pulled (and deleted); change nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Delete the subvolumes earlier pulls of this set from this repository made in DIR
        /// whose member the repository no longer holds (DIR/.arca-pulled.json lists them;
        /// nothing else is touched). Refused if any snapshot cannot be read.
        #[arg(long)]
        delete: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Back up databases: each dump is streamed straight into one snapshot of kind database
    /// (no temporary file, except SQLite's consistent copy). PostgreSQL: the roles and one
    /// pg_dump per database; MariaDB: users and grants and one mariadb-dump per database (one
    /// transaction each); SQLite: VACUUM INTO, consistent while writers go on.
    Backup(DbBackupArgs),
    /// List the databases a snapshot holds.
    #[command(after_help = "Examples:\n  arca db list\n  arca db list 3f2a9c1e --json")]
    List {
        /// A database snapshot (default: the latest).
        snapshot: Option<String>,
    },
    /// Restore one database into a running server (PostgreSQL, MariaDB) or a new file
    /// (SQLite).
    Restore(DbRestoreArgs),
    /// Lay out a PostgreSQL data directory that recovers to a point in time: the last base
    /// backup before it, and recovery settings that replay the archived WAL (`arca wal-fetch`)
    /// up to that moment or WAL location, then promote. Start PostgreSQL on the directory.
    #[command(
        after_help = "Examples:\n  arca --password-file /etc/arca/pw db pitr --at 2026-12-07T14:32:10+01:00 --target /srv/pg-restored\n  arca db pitr --lsn 0/3000148 --target /srv/pg-restored\n  pg_ctl -D /srv/pg-restored start     # then, as the database's user"
    )]
    Pitr(DbPitrArgs),
    /// Restore drill: restore each database of a snapshot into a throw-away instance (a
    /// PostgreSQL cluster or MariaDB server in a temporary directory, a temporary SQLite file),
    /// start it, and check it with the engine's own checker (pg_amcheck, mariadb-check,
    /// PRAGMA integrity_check). The results are recorded; `arca status` shows the last per
    /// database. Exit 1 if a drill failed.
    #[command(
        after_help = "Examples:\n  arca db verify                   # the latest database snapshot\n  arca db verify 3f2a9c1e -d app\n  arca db verify --pg-bin /usr/lib/postgresql/16/bin"
    )]
    Verify {
        /// A database snapshot (default: the latest).
        snapshot: Option<String>,
        /// Only this database.
        #[arg(long, short = 'd', value_name = "NAME")]
        database: Option<String>,
        /// The directory of PostgreSQL's server programs (default: the newest in
        /// /usr/lib/postgresql).
        #[arg(long, value_name = "DIR")]
        pg_bin: Option<PathBuf>,
    },
    /// Forget base backups and archived WAL no longer needed: what recovery to any moment of
    /// the last --pitr needs (the base backups ended in it, the last one before it, the WAL
    /// from that one's start), and the base backups the --keep-* rules keep. Then `arca prune`
    /// frees the space.
    #[command(
        after_help = "Examples:\n  arca db forget --pitr 14d --keep-daily 90 --dry-run\n  arca db forget --pitr 7d --keep-weekly 12 && arca prune"
    )]
    Forget(DbForgetArgs),
    /// Show from when to when each PostgreSQL cluster can be recovered (base backups and the
    /// unbroken WAL after them), and any gaps in its WAL archive.
    #[command(
        after_help = "Examples:\n  arca db coverage\n  arca db coverage --json --system-identifier 7716389245747052604"
    )]
    Coverage {
        /// Only this cluster (`SELECT system_identifier FROM pg_control_system()`).
        #[arg(long, value_name = "ID")]
        system_identifier: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct DbForgetArgs {
    /// Keep what recovery to any moment of this long before now needs (e.g. 14d).
    #[arg(long, value_name = "DURATION")]
    pub pitr: Option<String>,
    /// Keep the N newest base backups.
    #[arg(long, default_value_t = 0)]
    pub keep_last: usize,
    /// Keep the newest base backup of each of the N most recent days that have one.
    #[arg(long, default_value_t = 0)]
    pub keep_daily: usize,
    /// … ISO weeks.
    #[arg(long, default_value_t = 0)]
    pub keep_weekly: usize,
    /// … months.
    #[arg(long, default_value_t = 0)]
    pub keep_monthly: usize,
    /// Only this cluster (default: every cluster in the repository).
    #[arg(long, value_name = "ID")]
    pub system_identifier: Option<String>,
    /// Decide and report only.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct DbPitrArgs {
    /// The moment to recover to (RFC 3339, or "YYYY-MM-DD HH:MM:SS" local time).
    #[arg(long, value_name = "TIME", required_unless_present = "lsn", conflicts_with = "lsn")]
    pub at: Option<String>,
    /// The WAL location to recover to (e.g. 0/3000148).
    #[arg(long, value_name = "LSN")]
    pub lsn: Option<String>,
    /// The directory to lay out (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    pub target: PathBuf,
    /// The base backup to start from (default: the latest that ended before --at).
    #[arg(long, value_name = "SNAPSHOT")]
    pub base: Option<String>,
    /// The cluster, where the repository holds more than one.
    #[arg(long, value_name = "ID")]
    pub system_identifier: Option<String>,
    /// The restore_command to write (default: this arca, this repository, the password file
    /// or command given, `wal-fetch %f %p`).
    #[arg(long, value_name = "COMMAND")]
    pub restore_command: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbEngine {
    Postgres,
    Mariadb,
    Sqlite,
}

/// Where the database server is (unset: the tools' own environment and option files:
/// PGHOST/PGPORT/PGUSER/PGPASSWORD, ~/.pgpass, ~/.my.cnf, MYSQL_PWD).
#[derive(Args, Debug, Clone, Default)]
pub struct DbServer {
    /// Server host (PostgreSQL: also a socket directory).
    #[arg(long, value_name = "HOST")]
    pub db_host: Option<String>,
    #[arg(long, value_name = "PORT")]
    pub db_port: Option<u16>,
    #[arg(long, value_name = "USER")]
    pub db_user: Option<String>,
    /// MariaDB's socket file.
    #[arg(long, value_name = "FILE")]
    pub db_socket: Option<PathBuf>,
    /// The directory of the PostgreSQL programs (e.g. /usr/lib/postgresql/15/bin).
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  arca db backup postgres\n  arca db backup postgres -d app -d billing --tag nightly\n  arca db backup mariadb --db-socket /run/mysqld/mysqld.sock\n  arca db backup sqlite /srv/app/app.db /var/lib/grafana/grafana.db"
)]
pub struct DbBackupArgs {
    /// Which engine.
    #[arg(value_enum)]
    pub engine: DbEngine,
    /// SQLite: the database files.
    pub files: Vec<PathBuf>,
    /// A database to back up (repeat for more; default: all).
    #[arg(long = "database", short = 'd', value_name = "NAME")]
    pub databases: Vec<String>,
    #[command(flatten)]
    pub server: DbServer,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// The host name the snapshot records (default: this machine's).
    #[arg(long)]
    pub host: Option<String>,
    /// Write into a class (see `backup --class`).
    #[arg(long)]
    pub class: Option<String>,
    /// Run the dumps and count what would be stored; store nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// A physical backup of the whole server instead of dumps. PostgreSQL: a base backup
    /// (pg_basebackup), which with the WAL archive (`archive_command = 'arca wal-push %p'`) is
    /// what `db pitr` recovers from. MariaDB: mariadb-backup's stream (`db restore --target`
    /// unpacks and prepares it).
    #[arg(long, conflicts_with = "databases")]
    pub physical: bool,
    /// PostgreSQL: a cold backup of this data directory: stop the cluster, check with
    /// pg_controldata that it shut down cleanly, back up its files (tagged cold), start it
    /// again (whatever happened).
    #[arg(long, value_name = "PGDATA", conflicts_with_all = ["databases", "physical"])]
    pub cold: Option<PathBuf>,
    /// With --cold: the shell command that stops the cluster (default: pg_ctl stop -m fast,
    /// as its owner; Debian's clusters: pg_ctlcluster 15 main stop).
    #[arg(long, value_name = "COMMAND", requires = "cold")]
    pub stop: Option<String>,
    /// With --cold: the shell command that starts it again (default: pg_ctl start with the
    /// options it last ran with).
    #[arg(long, value_name = "COMMAND", requires = "cold")]
    pub start: Option<String>,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  arca db restore latest -d app                        # into the database app, which exists\n  arca db restore latest -d app --into app_copy --create\n  arca db restore latest -d app --clean                # over what is there\n  arca db restore latest --globals                     # PostgreSQL roles\n  arca db restore latest --engine sqlite -d /srv/app/app.db --target /tmp/app.db"
)]
pub struct DbRestoreArgs {
    /// The database snapshot (id prefix, `latest`, ...).
    pub snapshot: String,
    /// The database to restore (SQLite: the path it was backed up from).
    #[arg(long, short = 'd', value_name = "NAME")]
    pub database: Option<String>,
    /// The engine, where the snapshot holds more than one.
    #[arg(long, value_enum)]
    pub engine: Option<DbEngine>,
    /// Restore into this database instead of the one it came from.
    #[arg(long, value_name = "NAME")]
    pub into: Option<String>,
    /// Create the database first (it must not exist yet).
    #[arg(long)]
    pub create: bool,
    /// PostgreSQL: drop the objects the dump holds before recreating them.
    #[arg(long)]
    pub clean: bool,
    /// SQLite: the file to write (must not exist); a physical MariaDB backup: the data
    /// directory to lay out (must not exist, or be empty).
    #[arg(long, value_name = "FILE|DIR")]
    pub target: Option<PathBuf>,
    /// PostgreSQL: replay the roles and tablespaces instead of a database.
    #[arg(long, conflicts_with = "database")]
    pub globals: bool,
    /// List what the snapshot holds instead (as `db list`).
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub server: DbServer,
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    /// Say which key slots would be removed (and, with --rewrite, how much would be
    /// re-encrypted); change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Do it without asking (needed where no terminal can ask) when other key slots would
    /// be removed.
    #[arg(long)]
    pub yes: bool,
    /// Then re-encrypt everything written before: every pack and snapshot still sealed with
    /// a retired key is rewritten under the new keys, through prune's crash-safe repacking
    /// (a kill leaves a repository that checks clean; `--rewrite-only` carries on). Reads
    /// and writes all stored data once; packs no snapshot needs are deleted on the way.
    #[arg(long, conflicts_with = "rewrite_only")]
    pub rewrite: bool,
    /// Make no new key: re-encrypt what is still sealed with keys an earlier rotation
    /// retired (to finish an interrupted `--rewrite`, or after a plain rotation).
    #[arg(long)]
    pub rewrite_only: bool,
    /// With --rewrite: re-encrypt at most this much data in this run ("50G"); run
    /// `--rewrite-only` again for the rest.
    #[arg(long, value_name = "SIZE")]
    pub max_repack: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct PruneTuning {
    /// Unused space tolerated in partly used packs: a percentage of the used data ("5%"), a
    /// size ("200M", "1G"), or "unlimited" (never repack).
    #[arg(long, default_value = "5%", value_name = "PERCENT|SIZE")]
    pub max_unused: String,
    /// Rewrite at most this much used data by repacking in one run ("10G").
    #[arg(long, value_name = "SIZE")]
    pub max_repack: Option<String>,
    /// Sweep marked packs only once the mark is this old ("0", "30m", "6h", "2d"), on top of
    /// waiting for every session that was running when they were marked.
    #[arg(long, default_value = "0", value_name = "DURATION")]
    pub grace: String,
}

#[derive(Args, Debug)]
pub struct ProtectArgs {
    /// Snapshot ids (prefixes) or `latest`.
    #[arg(required = true)]
    pub snapshots: Vec<String>,
    /// Keep until this date (RFC 3339 or "YYYY-MM-DD"), or `forever`.
    #[arg(long)]
    pub until: Option<String>,
    /// Must be destroyed by this date (`forget --enforce-destroy` does it).
    #[arg(long)]
    pub destroy_after: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct MountArgs {
    /// An empty directory to mount on.
    pub mountpoint: PathBuf,
    /// Let other users (and services started in a chroot) read the mount.
    #[arg(long)]
    pub allow_other: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// SNAPSHOT or SNAPSHOT:PATH.
    pub snapshot: String,
    /// tar and pax: POSIX pax tar with ownership, ns times, xattrs, ACLs, hardlinks and GNU
    /// sparse files (GNU tar: `tar --xattrs --acls --xattrs-include='*' -xpf`); zip: files,
    /// directories and symlinks only.
    #[arg(long, value_enum, default_value_t = ExportFormat::Tar)]
    pub format: ExportFormat,
    /// Where to write: a file or device, or - for standard output (the default; tar only).
    #[arg(short = 'o', long, default_value = "-")]
    pub output: String,
    /// Read the written file back and compare it with the snapshot.
    #[arg(long)]
    pub verify: bool,
    /// For a tape (or any medium read back without arca): first a plain-text header record
    /// saying what the tape holds and the exact `dd … | tar …` commands that restore it, then
    /// the tar, all in records of 65536 bytes (`dd bs=65536 skip=1` reads past the header).
    #[arg(long, conflicts_with = "format")]
    pub tape: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Tar,
    Pax,
    Zip,
}

#[derive(Args, Debug)]
pub struct DumpArgs {
    /// Snapshot id prefix, `latest`, or `latest~N` (the N-th before it).
    pub snapshot: String,
    /// Path of the file inside the snapshot.
    pub path: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Also read and verify every byte of data.
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Read a subset: N/M (group N of M), P% (random packs) or a size such as 1G (random
    /// packs holding at least that much).
    #[arg(long)]
    pub read_data_subset: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// List key slots.
    #[command(after_help = "Examples:\n  arca key list\n  arca --json key list")]
    List,
    /// Add a password (from ARCA_NEW_PASSWORD, --new-password-file, or a prompt). With
    /// --backup-only, the new key can add backups but read nothing: not the data, not the
    /// snapshots, not other hosts' backups (docs/SECURITY.md).
    #[command(
        after_help = "Examples:\n  arca key add --new-password-file ~/.pw-new --label laptop\n  arca key add --backup-only --host web01 --new-password-file web01.pw --label web01"
    )]
    Add(KeyAddArgs),
    /// Remove a key slot by id prefix (not the one in use, not the last).
    #[command(after_help = "Examples:\n  arca key remove 3f2a9c1e")]
    Remove {
        /// Key slot id prefix.
        id: String,
    },
    /// Change the password of the key slot in use.
    #[command(after_help = "Examples:\n  arca key passwd --new-password-file ~/.pw-new")]
    Passwd(NewPassword),
    /// Save what opens this repository for safekeeping (the key slot in use, the config, and
    /// for the default repository its key file's password), as JSON. Keep it off this machine.
    #[command(
        after_help = "Examples:\n  arca key export -o /media/usb/arca-key.json\n  arca key export > arca-key.json\n  arca key export --paper -o key.txt && lp key.txt"
    )]
    Export {
        /// Write to this file (created, mode 0600) instead of standard output.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// For printing: the export as a QR code (text), then as JSON to type in if the code
        /// cannot be scanned; `key import` reads the JSON.
        #[arg(long)]
        paper: bool,
    },
    /// Show this host's signing key: the public half of the identity that signs the snapshots it
    /// adds and removes. Give it to an auditor for `arca verify-signature --pubkey`.
    #[command(
        after_help = "Examples:\n  arca key signer\n  arca key signer -o web01.pub    # then: arca verify-signature latest --pubkey web01.pub"
    )]
    Signer {
        /// Also write the public key line to this file.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// List the classes (`backup --class`): their content keys and snapshots.
    #[command(after_help = "Examples:\n  arca key classes\n  arca --json key classes")]
    Classes,
    /// Crypto-shred a class: forget its snapshots, then delete its keys from the repository.
    /// Its data then cannot be decrypted by anyone (any password, any old copy of the config
    /// or of a key export), and the next prune deletes its packs.
    ///
    /// Needs an exclusive lock (no prune or repair running); a backup into the class that is
    /// running fails instead of committing. Copies of the storage taken earlier (replicas,
    /// snapshots of the disk or bucket) still hold the keys: destroy the class there too.
    #[command(
        name = "destroy-class",
        after_help = "Examples:\n  arca key destroy-class hr-2019 --dry-run\n  arca key destroy-class hr-2019 --yes"
    )]
    DestroyClass {
        /// The class name.
        class: String,
        /// Say what would be destroyed; change nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Do it without asking (needed where no terminal can ask).
        #[arg(long)]
        yes: bool,
    },
    /// Rotate the repository's key: a new master key for everything written from now on,
    /// kept by a new key slot for the password in use. Every other key slot (other passwords,
    /// backup-only keys) is removed: a leaked one, even put back, then opens nothing. Data
    /// written before stays sealed with the retired keys (the new key carries them) unless
    /// `--rewrite` re-encrypts it. Needs an exclusive lock and no other session running.
    ///
    /// Afterwards: `arca key add` the other passwords again, `arca key add --backup-only`
    /// for each backup-only host, and `arca key export` again (an old export no longer opens).
    #[command(
        after_help = "Examples:\n  arca key rotate --dry-run\n  arca key rotate --yes\n  arca key rotate --rewrite --yes      # and re-encrypt all data written before\n  arca key rotate --rewrite-only       # finish an interrupted --rewrite\n  arca key rotate --rewrite-only --max-repack 50G   # a part of it per run"
    )]
    Rotate(RotateArgs),
    /// Put back a key slot (and, with --replace-config, a damaged config) from `key export`.
    #[command(
        after_help = "Examples:\n  arca key import /media/usb/arca-key.json\n  arca key import arca-key.json --replace-config"
    )]
    Import {
        /// A file written by `arca key export`.
        file: PathBuf,
        /// Also write the exported config over a missing or damaged one.
        #[arg(long)]
        replace_config: bool,
    },
}

#[derive(Args, Debug)]
pub struct VerifySignatureArgs {
    /// The snapshot: its id or an unambiguous prefix of it (`latest` needs a password).
    pub snapshot: String,
    /// A file holding the signer's public key line (`arca key signer -o FILE` writes it).
    #[arg(long, value_name = "FILE")]
    pub pubkey: PathBuf,
    /// The repository id the statement must name (`arca --json init` and `cat config` show
    /// it). Without it, the id comes from the config's unauthenticated envelope, so a storage
    /// could pass off another repository the same host signs into.
    #[arg(long, value_name = "ID")]
    pub repo_id: Option<String>,
}

#[derive(Args, Debug)]
pub struct KeyAddArgs {
    #[command(flatten)]
    pub password: NewPassword,
    /// A key that can only add backups: it deduplicates against everything stored, but every
    /// read (restore, ls, snapshots, check, mount, ...) is refused, and what it writes only
    /// a full key reads. Needs format version 2 and an encrypted repository.
    #[arg(long)]
    pub backup_only: bool,
    /// With --backup-only: the only host name its snapshots may carry (default: any).
    #[arg(long, requires = "backup_only")]
    pub host: Option<String>,
    /// A key that lists snapshots and their files (snapshots, ls, find, diff, stats: names,
    /// sizes, times, owners) but reads no contents and writes nothing. Snapshots written
    /// before the first reader key was added stay out of its reach until `key rotate
    /// --rewrite`.
    #[arg(long, conflicts_with_all = ["backup_only", "summary_only"])]
    pub metadata_only: bool,
    /// A key that lists snapshots' hosts, times, tags and sizes (`snapshots`) and nothing
    /// else: no file name, no path, no contents.
    #[arg(long, conflicts_with_all = ["backup_only", "metadata_only"])]
    pub summary_only: bool,
}

#[derive(Args, Debug)]
pub struct NewPassword {
    /// File holding the new password.
    #[arg(long, env = "ARCA_NEW_PASSWORD_FILE", hide_env_values = true)]
    pub new_password_file: Option<PathBuf>,
    /// A label to recognise the slot by.
    #[arg(long, default_value = "")]
    pub label: String,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// One snapshot (default: all).
    pub snapshot: Option<String>,
    /// What to count: restore-size (the files a restore would write, as they would be
    /// written) or raw-data (the unique blobs the snapshots reference, before and after
    /// compression).
    #[arg(long, value_enum, default_value_t = StatsMode::RestoreSize)]
    pub mode: StatsMode,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum StatsMode {
    RestoreSize,
    RawData,
}

#[derive(Args, Debug)]
pub struct CatArgs {
    /// What to show.
    #[arg(value_enum)]
    pub kind: CatKind,
    /// Object id (snapshot ids may be prefixes or `latest`).
    pub id: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum CatKind {
    Config,
    Snapshot,
    Tree,
    Index,
    Pack,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The jobs to run, by name.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub jobs: Vec<String>,
    /// Run every job in the config file, in name order.
    #[arg(long)]
    pub all: bool,
    /// Print each step's command line (secrets only by reference) and run nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Record that the job's last run failed outside arca's hands (killed, crashed, timed
    /// out): its history, failure ping and on-failure hooks. The schedule's OnFailure= unit
    /// runs this; a run that arca already recorded as failed is not reported twice.
    #[arg(long, conflicts_with = "dry_run")]
    pub report_failure: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Only these jobs (default: all).
    pub jobs: Vec<String>,
    /// Print one Nagios plugin line (`ARCA CRITICAL - 1 failed (db) | …`).
    #[arg(long)]
    pub nagios: bool,
    /// Also write a node-exporter textfile here (written atomically).
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
    /// Use the repository figures stored by the last run or status instead of opening each
    /// repository (fast; what snmp and the Prometheus file use).
    #[arg(long)]
    pub offline: bool,
}

#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// Print each job's schedule in systemd's form and its next five run times.
    #[command(after_help = "Examples:\n  arca schedule show\n  arca schedule show home --json")]
    Show {
        /// Only these jobs (default: all with a schedule).
        jobs: Vec<String>,
    },
    /// Write arca-JOB.service, arca-JOB.timer and arca-JOB-failed.service, then enable the
    /// timers (where systemd runs). Units go to /etc/systemd/system for root, else
    /// ~/.config/systemd/user.
    #[command(
        after_help = "Examples:\n  arca schedule install --all\n  arca schedule install home --dir ./units --no-enable"
    )]
    Install(ScheduleInstallArgs),
    /// Disable and remove the units of jobs.
    #[command(after_help = "Examples:\n  arca schedule remove home\n  arca schedule remove --all --dir ./units")]
    Remove(ScheduleInstallArgs),
    /// Print crontab lines for systems without systemd.
    #[command(after_help = "Examples:\n  arca schedule cron\n  (crontab -l; arca schedule cron home) | crontab -")]
    Cron {
        /// Only these jobs (default: all with a schedule).
        jobs: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct ScheduleInstallArgs {
    /// The jobs, by name.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub jobs: Vec<String>,
    /// Every job that has a schedule.
    #[arg(long)]
    pub all: bool,
    /// Where the unit files go.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Write (or remove) the files only; do not call systemctl.
    #[arg(long)]
    pub no_enable: bool,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Read the config file and report every problem (file, line and key), or list its
    /// repositories and jobs.
    #[command(after_help = "Examples:\n  arca config check\n  arca --config ./arca.toml config check --json")]
    Check,
    /// Print where the config file is looked for.
    #[command(after_help = "Examples:\n  arca config path")]
    Path,
}

#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// Rebuild the index from the packs themselves.
    #[command(after_help = "Examples:\n  arca repair index")]
    Index,
    /// Rewrite snapshots whose trees reference missing or damaged data, leaving out (and
    /// listing) what was lost. The originals stay until you forget them.
    #[command(after_help = "Examples:\n  arca repair snapshots --dry-run\n  arca repair snapshots --forget")]
    Snapshots(RepairSnapshotsArgs),
    /// Verify packs and rebuild damaged ones from their Reed-Solomon parity (`init --parity`).
    #[command(after_help = "Examples:\n  arca repair packs")]
    Packs(RepairPacksArgs),
}

#[derive(Args, Debug)]
pub struct RepairPacksArgs {
    /// Only these packs (full ids); default: every pack.
    pub packs: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RepairSnapshotsArgs {
    /// Show what would be rewritten; change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Remove the damaged originals once their repaired copies are stored.
    #[arg(long)]
    pub forget: bool,
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::{CommandFactory, Parser};

    /// Every visible command's help shows examples, and every example parses (issue 17: "--help
    /// of every command shows at least one example").
    #[test]
    fn every_command_has_examples_that_parse() {
        fn visit(cmd: &clap::Command, path: &mut Vec<String>, checked: &mut usize) {
            for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set() && c.get_name() != "help") {
                path.push(sub.get_name().to_string());
                let help = sub.get_after_help().map(|h| h.to_string()).unwrap_or_default();
                assert!(help.starts_with("Examples:"), "arca {} has no examples", path.join(" "));
                for line in help.lines().skip(1) {
                    let line = line.split(" # ").next().unwrap_or("");
                    for segment in line.split(" && ").flat_map(|s| s.split(" | ")) {
                        // Redirections are the shell's, not arca's.
                        let segment = segment.split(" > ").next().unwrap_or("").split(" < ").next().unwrap_or("");
                        let words = shlex::split(segment).unwrap_or_else(|| panic!("cannot split {segment:?}"));
                        // Leading VAR=value words set the environment, as in a shell.
                        let words: Vec<String> = words.into_iter().skip_while(|w| w.contains('=')).collect();
                        if words.first().map(String::as_str) != Some("arca") {
                            continue;
                        }
                        if let Err(e) = Cli::try_parse_from(&words) {
                            panic!("example {segment:?} of arca {} does not parse: {e}", path.join(" "));
                        }
                        *checked += 1;
                    }
                }
                visit(sub, path, checked);
                path.pop();
            }
        }
        let mut checked = 0;
        visit(&Cli::command(), &mut vec![], &mut checked);
        assert!(checked > 30, "{checked} examples");
    }

    /// Global options stand apart from a command's own in its help.
    #[test]
    fn global_options_have_their_own_heading() {
        let mut cmd = Cli::command();
        cmd.build();
        let help = cmd.find_subcommand_mut("forget").map(|c| c.render_help().to_string()).unwrap_or_default();
        let own = help.find("--keep-daily").unwrap_or(usize::MAX);
        let global = help.find("Global options:").unwrap_or(0);
        assert!(own < global, "{help}");
        assert!(help[global..].contains("--password-file"));
        assert!(!help[..global].contains("--password-file"));
    }
}
