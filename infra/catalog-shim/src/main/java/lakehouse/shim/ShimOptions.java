package lakehouse.shim;

import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

import org.apache.spark.sql.connector.expressions.NamedReference;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.internal.SQLConf;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

/** Option handling shared by the provider and the table. */
final class ShimOptions {

  /** Option carrying the partition columns to the Python writer (comma separated). */
  static final String PARTITION_BY = "partitionBy";

  private static final String[] LOCATION_KEYS = {"path", "location", "option.path"};

  private ShimOptions() {}

  /**
   * The table location found in {@code options} ({@code path}, {@code location} or
   * {@code option.path}), with {@code file:} URIs turned into plain local paths; {@code null} if
   * there is none.
   */
  static String location(Map<String, String> options) {
    if (options == null) {
      return null;
    }
    TreeMap<String, String> ci = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
    ci.putAll(options);
    for (String key : LOCATION_KEYS) {
      String value = ci.get(key);
      if (value != null && !value.isEmpty()) {
        return normalize(value);
      }
    }
    return null;
  }

  /** {@code file:/x} and {@code file:///x} become {@code /x}; other URIs are kept. */
  static String normalize(String location) {
    if (!location.toLowerCase(Locale.ROOT).startsWith("file:")) {
      return location;
    }
    try {
      return Paths.get(new URI(location)).toString();
    } catch (URISyntaxException | IllegalArgumentException e) {
      return location.substring("file:".length()).replaceFirst("^//", "");
    }
  }

  /**
   * Options for one scan or write: the table properties (with {@code option.} prefixes removed),
   * overridden by the per-query options, then {@code path} set to the table location (the
   * table's own location wins) and {@code partitionBy} derived from identity partition transforms
   * unless the query already set it.
   */
  static CaseInsensitiveStringMap merge(
      Map<String, String> tableProperties, Map<String, String> queryOptions, Transform[] partitioning) {
    TreeMap<String, String> merged = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
    if (tableProperties != null) {
      for (Map.Entry<String, String> e : tableProperties.entrySet()) {
        String key = e.getKey();
        if (key.startsWith("option.")) {
          key = key.substring("option.".length());
        }
        if (e.getValue() != null) {
          merged.put(key, e.getValue());
        }
      }
    }
    if (queryOptions != null) {
      for (Map.Entry<String, String> e : queryOptions.entrySet()) {
        if (e.getValue() != null) {
          merged.put(e.getKey(), e.getValue());
        }
      }
    }
    String location = location(tableProperties);
    if (location == null) {
      location = location(queryOptions);
    }
    merged.remove("location");
    merged.remove("option.path");
    if (location != null) {
      merged.put("path", location);
    }
    if (partitioning != null && !merged.containsKey(PARTITION_BY)) {
      List<String> columns = identityColumns(partitioning);
      if (!columns.isEmpty()) {
        merged.put(PARTITION_BY, String.join(",", columns));
      }
    }
    return new CaseInsensitiveStringMap(new HashMap<>(merged));
  }

  /** Column names of the identity transforms (plain {@code PARTITIONED BY (col)}). */
  static List<String> identityColumns(Transform[] partitioning) {
    List<String> columns = new ArrayList<>();
    for (Transform t : partitioning) {
      if ("identity".equals(t.name()) && t.references().length == 1) {
        NamedReference ref = t.references()[0];
        columns.add(String.join(".", ref.fieldNames()));
      }
    }
    return columns;
  }

  /** True when {@code location} lies under {@code spark.sql.warehouse.dir} (managed tables). */
  static boolean underWarehouse(String location) {
    String warehouse;
    try {
      warehouse = SQLConf.get().getConfString("spark.sql.warehouse.dir", null);
    } catch (RuntimeException e) {
      return false;
    }
    if (warehouse == null) {
      return false;
    }
    String root = normalize(warehouse).replaceAll("/+$", "");
    String loc = normalize(location);
    return loc.equals(root) || loc.startsWith(root + "/");
  }

  /** Fails with a clear message when the Python data source is not registered in the session. */
  static void requirePythonSource(String name) {
    boolean exists;
    try {
      exists =
          org.apache.spark.sql.classic.SparkSession.active()
              .sessionState()
              .dataSourceManager()
              .dataSourceExists(name);
    } catch (RuntimeException e) {
      return; // no active classic session: let Spark report its own error later
    }
    if (!exists) {
      throw new IllegalStateException(
          "format delta is served by the Python data source '"
              + name
              + "', which is not registered in this Spark session (install the pyspark_lakehouse "
              + "package into the workers' python, or set "
              + DeltaShimProvider.PYTHON_SOURCE_CONF
              + ")");
    }
  }
}
