# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_gateway_global_optspecs
    string join \n port= profile= dev bind= state-dir= token= token-file= tls-cert= tls-key= allow-plaintext allow-origin= max-connections= max-buffered-mb= shutdown-timeout= handoff-timeout= log-format= force cluster-etcd= cluster-key= cluster-ttl= standby cluster-ca= cluster-cert= cluster-cert-key= cluster-user= h/help V/version
end

function __fish_gateway_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_gateway_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_gateway_using_subcommand
    set -l cmd (__fish_gateway_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c gateway -n "__fish_gateway_needs_command" -l port -d 'TCP port [default: 18789, or 19001 with --dev]' -r
complete -c gateway -n "__fish_gateway_needs_command" -l profile -d 'Profile name: its own state directory and lock' -r
complete -c gateway -n "__fish_gateway_needs_command" -l bind -d 'IP address of the gateway (an IP literal, not a host name)' -r
complete -c gateway -n "__fish_gateway_needs_command" -l state-dir -d 'State directory of the profile' -r -F
complete -c gateway -n "__fish_gateway_needs_command" -l token -d 'Token every WebSocket `connect` must carry (required off loopback). On the command line any local user can read it: prefer --token-file' -r
complete -c gateway -n "__fish_gateway_needs_command" -l token-file -d 'File holding the token (a trailing newline is ignored). Precedence: --token > --token-file > the systemd credential gateway-token > GATEWAY_TOKEN' -r -F
complete -c gateway -n "__fish_gateway_needs_command" -l tls-cert -d 'PEM certificate chain, leaf first: the port then speaks TLS only (https://, wss://)' -r -F
complete -c gateway -n "__fish_gateway_needs_command" -l tls-key -d 'PEM private key of --tls-cert; refused when readable by group or others' -r -F
complete -c gateway -n "__fish_gateway_needs_command" -l allow-origin -d 'An extra Origin allowed to open the WebSocket, e.g. https://app.example.com (repeatable)' -r
complete -c gateway -n "__fish_gateway_needs_command" -l max-connections -d 'Open connections beyond which new ones get 503 (keeps file descriptors in reserve)' -r
complete -c gateway -n "__fish_gateway_needs_command" -l max-buffered-mb -d 'MiB that WebSocket messages still arriving may hold, over all connections; a message that would go over it closes its connection (1013, try again later)' -r
complete -c gateway -n "__fish_gateway_needs_command" -l shutdown-timeout -d 'Seconds the graceful stop may take before the gateway exits anyway (code 1)' -r
complete -c gateway -n "__fish_gateway_needs_command" -l handoff-timeout -d 'Seconds a restart\'s new process has to serve before it is killed and this gateway serves on' -r
complete -c gateway -n "__fish_gateway_needs_command" -l log-format -d 'Log line format' -r -f -a "text\t''
json\t''"
complete -c gateway -n "__fish_gateway_needs_command" -l cluster-etcd -d 'etcd endpoints of the cluster lock (http://HOST:PORT or https://HOST:PORT, comma-separated, one scheme for all): only one gateway per --cluster-key is active across hosts' -r
complete -c gateway -n "__fish_gateway_needs_command" -l cluster-key -d 'The name the gateways compete for [default: the profile name]' -r
complete -c gateway -n "__fish_gateway_needs_command" -l cluster-ttl -d 'Seconds the cluster lock\'s lease lives without a keep-alive' -r
complete -c gateway -n "__fish_gateway_needs_command" -l cluster-ca -d 'PEM CA certificate(s) that https:// etcd endpoints are verified against [default: the system\'s CA store]' -r -F
complete -c gateway -n "__fish_gateway_needs_command" -l cluster-cert -d 'PEM client certificate (leaf first) presented to https:// etcd endpoints' -r -F
complete -c gateway -n "__fish_gateway_needs_command" -l cluster-cert-key -d 'PEM private key of --cluster-cert; refused when readable by group or others' -r -F
complete -c gateway -n "__fish_gateway_needs_command" -l cluster-user -d 'etcd user to authenticate as; its password comes from GATEWAY_CLUSTER_PASSWORD or the systemd credential gateway-cluster-password, never from a flag' -r
complete -c gateway -n "__fish_gateway_needs_command" -l dev -d 'Profile `dev` on port 19001 (an alternative to --profile)'
complete -c gateway -n "__fish_gateway_needs_command" -l allow-plaintext -d 'Serve plaintext off loopback, because a TLS proxy in front terminates TLS (one warning at start)'
complete -c gateway -n "__fish_gateway_needs_command" -l force -d 'Take the port from whatever holds it (SIGTERM, then SIGKILL after 2 s)'
complete -c gateway -n "__fish_gateway_needs_command" -l standby -d 'When another gateway is active, wait as a standby instead of exiting 78'
complete -c gateway -n "__fish_gateway_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gateway -n "__fish_gateway_needs_command" -s V -l version -d 'Print version'
complete -c gateway -n "__fish_gateway_needs_command" -f -a "status" -d 'Tell whether a gateway runs on the port (exit 0), nothing does (3), or something else (4)'
complete -c gateway -n "__fish_gateway_needs_command" -f -a "stop" -d 'Stop the gateway on the port with SIGTERM and wait until the port is free'
complete -c gateway -n "__fish_gateway_needs_command" -f -a "restart" -d 'Restart the gateway on the port by handing its sockets and profile lock to a new process (no connection refused); exit 0 restarted, 1 failed (the old one still serves), 75 a restart already in progress'
complete -c gateway -n "__fish_gateway_needs_command" -f -a "completions" -d 'Print a shell completion script on stdout, e.g. `gateway completions bash`'
complete -c gateway -n "__fish_gateway_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gateway -n "__fish_gateway_using_subcommand status" -l port -d 'TCP port [default: 18789, or 19001 with --dev]' -r
complete -c gateway -n "__fish_gateway_using_subcommand status" -l profile -d 'Profile name: its own state directory and lock' -r
complete -c gateway -n "__fish_gateway_using_subcommand status" -l bind -d 'IP address of the gateway (an IP literal, not a host name)' -r
complete -c gateway -n "__fish_gateway_using_subcommand status" -l state-dir -d 'State directory of the profile' -r -F
complete -c gateway -n "__fish_gateway_using_subcommand status" -l dev -d 'Profile `dev` on port 19001 (an alternative to --profile)'
complete -c gateway -n "__fish_gateway_using_subcommand status" -l json -d 'Print one JSON object instead of a summary'
complete -c gateway -n "__fish_gateway_using_subcommand status" -s h -l help -d 'Print help'
complete -c gateway -n "__fish_gateway_using_subcommand stop" -l port -d 'TCP port [default: 18789, or 19001 with --dev]' -r
complete -c gateway -n "__fish_gateway_using_subcommand stop" -l profile -d 'Profile name: its own state directory and lock' -r
complete -c gateway -n "__fish_gateway_using_subcommand stop" -l bind -d 'IP address of the gateway (an IP literal, not a host name)' -r
complete -c gateway -n "__fish_gateway_using_subcommand stop" -l state-dir -d 'State directory of the profile' -r -F
complete -c gateway -n "__fish_gateway_using_subcommand stop" -l timeout -d 'Seconds to wait for the port to be free before giving up (exit 1)' -r
complete -c gateway -n "__fish_gateway_using_subcommand stop" -l dev -d 'Profile `dev` on port 19001 (an alternative to --profile)'
complete -c gateway -n "__fish_gateway_using_subcommand stop" -s h -l help -d 'Print help'
complete -c gateway -n "__fish_gateway_using_subcommand restart" -l port -d 'TCP port [default: 18789, or 19001 with --dev]' -r
complete -c gateway -n "__fish_gateway_using_subcommand restart" -l profile -d 'Profile name: its own state directory and lock' -r
complete -c gateway -n "__fish_gateway_using_subcommand restart" -l bind -d 'IP address of the gateway (an IP literal, not a host name)' -r
complete -c gateway -n "__fish_gateway_using_subcommand restart" -l state-dir -d 'State directory of the profile' -r -F
complete -c gateway -n "__fish_gateway_using_subcommand restart" -l timeout -d 'Seconds to wait for the outcome of the handoff before giving up (exit 1)' -r
complete -c gateway -n "__fish_gateway_using_subcommand restart" -l dev -d 'Profile `dev` on port 19001 (an alternative to --profile)'
complete -c gateway -n "__fish_gateway_using_subcommand restart" -s h -l help -d 'Print help'
complete -c gateway -n "__fish_gateway_using_subcommand completions" -s h -l help -d 'Print help'
complete -c gateway -n "__fish_gateway_using_subcommand help; and not __fish_seen_subcommand_from status stop restart completions help" -f -a "status" -d 'Tell whether a gateway runs on the port (exit 0), nothing does (3), or something else (4)'
complete -c gateway -n "__fish_gateway_using_subcommand help; and not __fish_seen_subcommand_from status stop restart completions help" -f -a "stop" -d 'Stop the gateway on the port with SIGTERM and wait until the port is free'
complete -c gateway -n "__fish_gateway_using_subcommand help; and not __fish_seen_subcommand_from status stop restart completions help" -f -a "restart" -d 'Restart the gateway on the port by handing its sockets and profile lock to a new process (no connection refused); exit 0 restarted, 1 failed (the old one still serves), 75 a restart already in progress'
complete -c gateway -n "__fish_gateway_using_subcommand help; and not __fish_seen_subcommand_from status stop restart completions help" -f -a "completions" -d 'Print a shell completion script on stdout, e.g. `gateway completions bash`'
complete -c gateway -n "__fish_gateway_using_subcommand help; and not __fish_seen_subcommand_from status stop restart completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
