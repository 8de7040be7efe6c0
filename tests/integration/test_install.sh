#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# `cmake --install` (issue 12): the binary, migrations, page templates,
# documents, the systemd unit and its system user land in the standard
# places under the prefix given; the unit names that prefix's binary, passes
# `systemd-analyze verify`, carries the hardening the README promises and is
# rated OK or better by `systemd-analyze security`; the sysusers file makes
# the user; and the installed binary, configured by the installed example
# (the database and secret from the environment, which wins), migrates and
# serves.
source "$(dirname "$0")/lib.sh"

build=$(dirname "$RENKEI_BIN")
[[ -f $build/cmake_install.cmake ]] || fail "$build is not a CMake build tree"
prefix=$tmpdir/usr
cmake --install "$build" --prefix "$prefix" >"$tmpdir/install.log" 2>&1 ||
  fail "cmake --install failed: $(tail -n 5 "$tmpdir/install.log")"
ok "cmake --install --prefix $prefix"

for f in bin/renkei lib/systemd/system/renkei.service lib/sysusers.d/renkei.conf \
  share/doc/renkei/renkei.env.example share/doc/renkei/README.md share/doc/renkei/FORMAT.md \
  share/renkei/pages/login.html share/renkei/pages/messages.json; do
  check "$f is installed" test -s "$prefix/$f"
done
check "the binary is executable" test -x "$prefix/bin/renkei"
assert_eq "$(find "$RENKEI_SRC/sql" -name '[0-9][0-9][0-9][0-9]_*.sql' | wc -l)" \
  "$(find "$prefix/share/renkei/sql" -name '*.sql' | wc -l)" "every migration is installed"
run_renkei version
installed_version=$("$prefix/bin/renkei" version)
assert_eq "$RUN_OUT" "$installed_version" "the installed binary is the one built"

# ---- the unit
unit=$prefix/lib/systemd/system/renkei.service
assert_eq "ExecStart=$prefix/bin/renkei serve" "$(grep '^ExecStart=' "$unit")" "the unit starts the installed binary"
for line in User=renkei Group=renkei NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
  PrivateDevices=yes CapabilityBoundingSet= AmbientCapabilities= StateDirectory=renkei \
  RestrictAddressFamilies='AF_INET AF_INET6 AF_UNIX' SystemCallFilter=@system-service \
  Environment=RENKEI_CONFIG_FILE=/etc/renkei/renkei.env KillSignal=SIGTERM; do
  check "the unit says $line" grep -qxF "$line" "$unit"
done
command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing: run ops/setup"
systemd-analyze verify "$unit" >"$tmpdir/verify.out" 2>&1 || fail "systemd-analyze verify: $(cat "$tmpdir/verify.out")"
ok "systemd-analyze verify accepts the unit"
systemd-analyze security --offline=true "$unit" >"$tmpdir/security.out" 2>&1 || true
exposure=$(sed -n 's/.*Overall exposure level for renkei.service: \([0-9.]*\).*/\1/p' "$tmpdir/security.out")
[[ $exposure =~ ^[0-9]+\.[0-9]$ ]] || fail "no exposure level from systemd-analyze security: $(tail -n 3 "$tmpdir/security.out")"
# systemd's scale: below 2 "OK", below 1 "SAFE"; 10 is an unprotected service
assert_lt "${exposure/./}" 20 "systemd-analyze security rates the unit $exposure (OK or better)"

# ---- the system user
mkdir -p "$tmpdir/root"
systemd-sysusers --dry-run --root="$tmpdir/root" "$prefix/lib/sysusers.d/renkei.conf" >"$tmpdir/sysusers.out" 2>&1 ||
  fail "systemd-sysusers refuses the file: $(cat "$tmpdir/sysusers.out")"
assert_match "Creating user 'renkei'" "$(cat "$tmpdir/sysusers.out")" "sysusers.d makes the user renkei"

# ---- the installed binary with the installed example configuration
example=$prefix/share/doc/renkei/renkei.env.example
_renkei_env RENKEI_CONFIG_FILE="$example" migrate
env -i "${_env[@]}" "$prefix/bin/renkei" "${_rest[@]}" >"$tmpdir/migrate.out" 2>&1 ||
  fail "the installed binary cannot migrate with the example configuration: $(cat "$tmpdir/migrate.out")"
ok "the installed binary migrates, configured by the example (every key known, every value valid)"
RENKEI_BIN=$prefix/bin/renkei
hub_start RENKEI_CONFIG_FILE="$example"
assert_eq https://id.pref.example.jp "$(jq -r .issuer <<<"$HUB_LISTENING")" "the hub takes its issuer from the example"
http GET /readyz
assert_status 200 "the installed hub is ready"
http GET /.well-known/openid-configuration
assert_json '.issuer == "https://id.pref.example.jp"' "and publishes the example's issuer"
hub_stop
