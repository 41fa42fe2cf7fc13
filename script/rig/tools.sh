# Command-line tools that tests run directly, with no server to start:
#   strace   deploykit-cli/tests/cli_durability.rs watches a real deploy's fsyncs
#   flock    (util-linux) the PM2 host lock's compare-and-swap, run over SSH
rig_tools_provision() {
  command -v strace >/dev/null || apt_install strace
  command -v flock >/dev/null || apt_install util-linux
}
rig_tools_start() { :; }
rig_tools_stop() { :; }
