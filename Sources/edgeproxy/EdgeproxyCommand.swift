import ArgumentParser

/// `edgeproxy`: the node itself (`run`, `check`), one-shot maintenance (`cluster import|reseal`),
/// and the commands that ask a running node through its admin API.
struct EdgeproxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edgeproxy",
        abstract: "A TLS-terminating reverse proxy with ACME and a shared certificate store.",
        discussion: """
            The commands that talk to a running node (status, certs, reload, acme, cluster status) find its admin \
            API through the configuration file (admin.listen and admin.token), or through --admin URL and --token \
            (or EDGEPROXY_ADMIN_TOKEN). They print a table; --json prints the admin API's JSON for scripts.
            """,
        version: BuildInfo.summary,
        subcommands: [RunCommand.self, CheckCommand.self, StatusCommand.self, CertsCommand.self, ReloadCommand.self,
                      ACMECommand.self, ClusterCommand.self, VersionCommand.self])
}
