#!/usr/bin/env bash
# What the test suite needs on a fresh machine, installed or started only when missing:
# Chromium + ChromeDriver and Firefox ESR (Debian), geckodriver (crates.io), PostgreSQL and
# MariaDB running, faketime, iproute2 and nftables, PHP with PDO MySQL and curl, PHPUnit and the Laravel components.
# README's test command and .ci/run both call it.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== browsers for the UI tests (Debian's chromium + chromedriver, firefox-esr + geckodriver)"
if ! command -v chromedriver >/dev/null 2>&1 || [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/firefox-esr ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver firefox-esr >/dev/null
fi
# Debian packages no geckodriver; crates.io has Mozilla's own (built from source, ~3 min).
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
if ! command -v geckodriver >/dev/null 2>&1; then
  cargo install geckodriver --locked --quiet
fi
chromium --version || true
firefox-esr --version || true
# Not `| head -1`: geckodriver panics when its reader closes the pipe early (EPIPE).
geckodriver --version 2>&1 | sed -n 1p


echo "== PostgreSQL for the PostgreSQL driver's tests (the machine starts it; start it if it stopped)"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432


echo "== MariaDB for the MySQL/MariaDB driver's tests (start it if it stopped; install it when missing)"
# `mysqladmin ping` succeeds even when the login is refused: check with a real query.
mysql_tcp() { mysql --protocol=tcp -h 127.0.0.1 -P 3306 -uroot --connect-timeout=2 -N -e "$1"; }
if ! mysql_tcp 'SELECT 1' >/dev/null 2>&1; then
  if [ ! -x /usr/sbin/mariadbd ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq mariadb-server mariadb-client >/dev/null
  fi
  if ! mysqladmin -uroot --connect-timeout=2 ping >/dev/null 2>&1; then
    # No init system in a container: start the server the way its packaging does.
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    (setsid mariadbd-safe --user=mysql --bind-address=127.0.0.1 --port=3306 >/dev/null 2>&1 &)
    for _ in $(seq 1 60); do mysqladmin -uroot --connect-timeout=2 ping >/dev/null 2>&1 && break; sleep 1; done
  fi
  # Debian's root logs in by the unix socket only; the tests log in over TCP without a password.
  mysql -uroot -e "
    ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
    CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
    GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
    CREATE DATABASE IF NOT EXISTS test;"
fi
mysql_tcp 'SELECT VERSION()'


echo "== faketime for the clock-skew tests (Debian's libfaketime, preloaded into a daemon)"
if [ ! -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq faketime >/dev/null
fi


echo "== iproute2 and nftables for the network-fault tests (hosts in namespaces of their own)"
if ! command -v ip >/dev/null 2>&1 || ! command -v nft >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq iproute2 nftables >/dev/null
fi


echo "== PHP for the PHP tests (Debian's php-cli with PDO MySQL and curl, phpunit, php-laravel-framework)"
# phpunit runs the PHP client's tests (clients/php); php-laravel-framework gives them the
# Illuminate components (/usr/share/php/Illuminate) for the service provider test.
if ! command -v php >/dev/null 2>&1 || ! php -m | grep -qi '^pdo_mysql$' || ! php -m | grep -qi '^curl$' \
  || ! command -v phpunit >/dev/null 2>&1 || [ ! -f /usr/share/php/Illuminate/autoload.php ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq php-cli php-mysql php-curl phpunit php-laravel-framework >/dev/null
fi
php --version | sed -n 1p
phpunit --version | sed -n 1p
