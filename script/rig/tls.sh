# A throwaway certificate authority and a server certificate for 127.0.0.1, for the
# HTTPS health probe's test (which serves them with `openssl s_server`).
#
# Exports:
#   DEPLOYKIT_RIG_TLS_CA     the CA certificate (PEM): trust it via SSL_CERT_FILE
#   DEPLOYKIT_RIG_TLS_CERT   the server certificate (PEM), for IP 127.0.0.1 only
#   DEPLOYKIT_RIG_TLS_KEY    its private key (PEM)
#   DEPLOYKIT_RIG_TLS_OTHER_CA  another CA that did not sign it (PEM)

RIG_TLS_DIR="$RIG_DIR/tls"

rig_tls_provision() {
  command -v openssl >/dev/null || apt_install openssl
}

rig_tls_start() {
  local d="$RIG_TLS_DIR"
  rm -rf "$d" && mkdir -p "$d"
  local ca
  for ca in ca other; do
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=deploykit rig $ca" \
      -keyout "$d/$ca.key" -out "$d/$ca.pem" 2>/dev/null
  done
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$d/ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/ext" -out "$d/server.pem" 2>/dev/null
  export DEPLOYKIT_RIG_TLS_CA="$d/ca.pem" DEPLOYKIT_RIG_TLS_CERT="$d/server.pem" \
    DEPLOYKIT_RIG_TLS_KEY="$d/server.key" DEPLOYKIT_RIG_TLS_OTHER_CA="$d/other.pem"
  log "tls: CA and a 127.0.0.1 certificate under $d"
}

rig_tls_stop() {
  :
}
