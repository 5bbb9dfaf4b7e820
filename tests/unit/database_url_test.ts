/**
 * DATABASE_URL forms that libpq takes and the engine must take too (engine/database_url.ts): Unix
 * sockets (Cloud SQL on Cloud Run, local peer authentication), connect_timeout, hosted services'
 * parameters; and the libpq parameters postgres.js cannot honour, refused by name at start-up
 * instead of failing the connect.
 */
import assert from "node:assert/strict";
import { databaseUrlProblem, parseDatabaseUrl, redactUrl } from "../../engine/database_url.ts";

Deno.test("parseDatabaseUrl(): host=/directory is a Unix socket, libpq's and Cloud SQL's form", () => {
  const cloudSql = parseDatabaseUrl("postgres://app:s3cret@/shop?host=/cloudsql/proj:europe-west1:db");
  assert.equal(cloudSql.socketPath, "/cloudsql/proj:europe-west1:db/.s.PGSQL.5432");
  assert.deepEqual(cloudSql.hosts, ["/cloudsql/proj:europe-west1:db"]);
  assert.deepEqual(cloudSql.ports, [5432]);
  assert.equal(cloudSql.user, "app");
  assert.equal(cloudSql.password, "s3cret");
  assert.equal(cloudSql.database, "shop");
  // Before, host= went to the server as a setting: FATAL unrecognized configuration parameter "host".
  assert.deepEqual(cloudSql.serverSettings, {});
  // host= replaces the URL's host (as in libpq), whose port still names the socket file; a trailing / is dropped.
  const local = parseDatabaseUrl("postgres://app@localhost:5433/shop?host=/var/run/postgresql/");
  assert.equal(local.socketPath, "/var/run/postgresql/.s.PGSQL.5433");
  assert.equal(parseDatabaseUrl("postgres://app@/shop?host=/tmp&port=6000").socketPath, "/tmp/.s.PGSQL.6000");
  // libpq ignores sslmode on a socket, and PostgreSQL has no TLS on one: postgres.js must not try it.
  const withTls = parseDatabaseUrl("postgres://app@/shop?host=/tmp&sslmode=require&sslnegotiation=direct");
  assert.equal(withTls.ssl, false);
  assert.equal(withTls.sslnegotiation, null);
});

Deno.test("parseDatabaseUrl(): a percent-encoded directory in place of the host is a Unix socket", () => {
  const address = parseDatabaseUrl("postgres://app@%2Fvar%2Frun%2Fpostgresql/shop");
  assert.equal(address.socketPath, "/var/run/postgresql/.s.PGSQL.5432");
  assert.equal(address.ssl, false);
  const withPort = parseDatabaseUrl("postgresql://app:p%40ss@%2fcloudsql%2Fp%3Ar%3Ai:6432/shop");
  assert.equal(withPort.socketPath, "/cloudsql/p:r:i/.s.PGSQL.6432");
  assert.equal(withPort.password, "p@ss");
  // TCP stays TCP.
  assert.equal(parseDatabaseUrl("postgres://app@db/shop").socketPath, null);
});

Deno.test("parseDatabaseUrl(): a URL naming no host and no host= is still refused; so are sockets it cannot use", () => {
  const cases: [string, RegExp][] = [
    ["postgres:///shop", /must name a host, .*Unix socket directory .*host=\/var\/run\/postgresql/],
    ["postgres://app@/shop", /must name a host/],
    ["postgres://app@db/shop?host=db2", /host= must be a Unix socket directory \(an absolute path\)/],
    ["postgres://app@/shop?host=var/run", /host= must be a Unix socket directory/],
    ["postgres://app@db-1,db-2/shop?host=/tmp", /host= names one socket directory/],
    ["postgres://app@db,%2Ftmp/shop", /socket directory must be the only host/],
    ["postgres://app@/shop?host=/a,/b", /one absolute path/],
    ["postgres://app@%2Ftmp:99999/shop", /port from 1 to 65535/],
    ["postgres://app@/shop?host=/tmp&port=0", /port must be a port from 1 to 65535/],
    [`postgres://app@/shop?host=/${"d".repeat(100)}`, /too long: .* at most 107 bytes/],
    ["postgres:///shop?host=/tmp", /must name the user/],
  ];
  for (const [url, expected] of cases) assert.match(databaseUrlProblem(url) ?? "accepted", expected, url);
  // user= and dbname= in the query, as libpq reads them.
  const fromQuery = parseDatabaseUrl("postgres:///?host=/tmp&user=app&dbname=shop");
  assert.equal(fromQuery.user, "app");
  assert.equal(fromQuery.database, "shop");
});

Deno.test("parseDatabaseUrl(): connect_timeout is libpq's connect timeout in seconds, not a refused client option", () => {
  assert.equal(parseDatabaseUrl("postgres://app@db/shop?connect_timeout=10").connectTimeoutS, 10);
  assert.equal(parseDatabaseUrl("postgres://app@db/shop").connectTimeoutS, null);
  assert.deepEqual(parseDatabaseUrl("postgres://app@db/shop?connect_timeout=10").serverSettings, {});
  for (const value of ["0", "-1", "1.5", "ten", "", "2147484"]) {
    assert.match(
      databaseUrlProblem(`postgres://app@db/shop?connect_timeout=${value}`) ?? "accepted",
      /connect_timeout must be whole seconds from 1 to 2147483/,
      value,
    );
  }
});

Deno.test("parseDatabaseUrl(): channel_binding and libpq's no-op parameters are accepted and not sent to the server", () => {
  const neon = parseDatabaseUrl(
    "postgresql://app:s3cret@ep-x-123.us-east-2.aws.neon.tech/neondb?sslmode=require&channel_binding=prefer",
  );
  assert.equal(neon.ssl, "require");
  assert.deepEqual(neon.serverSettings, {});
  const dropped = parseDatabaseUrl(
    "postgres://app@db/shop?channel_binding=prefer&sslcompression=0&gssencmode=prefer&load_balance_hosts=disable" +
      "&client_encoding=UTF8&application_name=engine&options=-c%20search_path%3Dshop",
  );
  assert.deepEqual(dropped.serverSettings, { application_name: "engine", options: "-c search_path=shop" });
  assert.equal(
    parseDatabaseUrl("postgres://app@db/shop?fallback_application_name=x").serverSettings.application_name,
    "x",
  );
  assert.equal(
    parseDatabaseUrl("postgres://app@db/shop?application_name=a&fallback_application_name=x").serverSettings
      .application_name,
    "a",
  );
  // Percent-decoded as libpq does: + stays +.
  assert.equal(parseDatabaseUrl("postgres://app@db/shop?application_name=a+b").serverSettings.application_name, "a+b");
});

Deno.test("parseDatabaseUrl(): libpq parameters postgres.js cannot honour are refused by name", () => {
  const cases: [string, RegExp][] = [
    ["keepalives=1", /the parameter keepalives is not supported by the engine's PostgreSQL client/],
    ["sslcert=/etc/client.crt", /the parameter sslcert is not supported/],
    ["hostaddr=10.0.0.1", /the parameter hostaddr is not supported/],
    ["service=prod", /the parameter service is not supported/],
    ["replication=database", /the parameter replication is not supported/],
    ["database=other", /the parameter database is not supported/],
    ["channel_binding=always", /the parameter channel_binding has a value postgres.js cannot honour/],
    // Channel binding asked for and not enforced would be a silent downgrade: refused.
    ["channel_binding=require", /the parameter channel_binding has a value postgres.js cannot honour/],
    ["gssencmode=require", /the parameter gssencmode has a value postgres.js cannot honour/],
    ["load_balance_hosts=random", /the parameter load_balance_hosts has a value/],
    ["client_encoding=LATIN1", /the parameter client_encoding has a value/],
    ["password=s3cret", /password= is not supported: put the password in the user part/],
    ["idle_timeout=5", /idle_timeout is a client option the engine sets itself/],
    ["application_name", /a query parameter without =value/],
    ["application_name=%zz", /the parameter application_name is not valid percent-encoding/],
  ];
  for (const [query, expected] of cases) {
    const problem = databaseUrlProblem(`postgres://app:s3cret@db/shop?${query}`) ?? "accepted";
    assert.match(problem, expected, query);
    assert.ok(!problem.includes("s3cret"), problem);
  }
});

Deno.test("redactUrl(): a password in the query is hidden too", () => {
  assert.equal(
    redactUrl("postgres://app@db/shop?password=s3cret&sslpassword=k3y&application_name=x"),
    "postgres://app@db/shop?password=***&sslpassword=***&application_name=x",
  );
  assert.equal(redactUrl("postgres://app:pw@db/shop?PASSWORD=s3cret"), "postgres://app:***@db/shop?PASSWORD=***");
});
