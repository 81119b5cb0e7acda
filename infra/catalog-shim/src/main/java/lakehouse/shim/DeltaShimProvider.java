package lakehouse.shim;

import java.util.Map;

import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableProvider;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.execution.datasources.v2.python.PythonDataSourceV2;
import org.apache.spark.sql.internal.SQLConf;
import org.apache.spark.sql.sources.DataSourceRegister;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

/**
 * Format {@code delta} for Spark SQL catalog tables, backed by a Python data source (delta-rs).
 *
 * <p>Spark 4.1 resolves a catalog table whose provider is a {@link TableProvider} through
 * {@code V2SessionCatalog.loadTable}, which calls {@link #getTable} with the table's storage
 * properties plus {@code path} (its location). {@code PythonDataSourceV2.getTable} drops those
 * properties, so a Python source used directly as a table provider never sees its location. This
 * provider wraps a {@link PythonDataSourceV2} for the Python source named by the SQL conf
 * {@value #PYTHON_SOURCE_CONF} (default {@value #DEFAULT_PYTHON_SOURCE}) and returns a
 * {@link DeltaShimTable}, which merges the location and partition columns into the options of
 * every scan and every write.
 *
 * <p>A new instance is created by Spark for every lookup, so the wrapped Python data source
 * instance (cached by {@code PythonDataSourceV2}) never leaks between tables.
 *
 * <p>Works: CREATE TABLE ... USING delta LOCATION (schema and suffix partition columns from the
 * Delta log), CTAS and REPLACE TABLE AS SELECT (managed or with LOCATION), INSERT INTO, INSERT
 * OVERWRITE (whole table; dynamic partition overwrite only for unpartitioned tables),
 * saveAsTable in every mode, SELECT, and path-based {@code format("delta")} load/save in append or
 * overwrite mode. Not supported: MERGE/UPDATE/DELETE in SQL (use the Python table API), INSERT
 * OVERWRITE ... PARTITION and dynamic overwrite of partitioned tables, ErrorIfExists/Ignore for
 * path-based saves (a Spark rule for TableProviders), and, as for Hive tables, PARTITIONED BY
 * columns that are not the last columns of the schema.
 */
public final class DeltaShimProvider implements TableProvider, DataSourceRegister {

  /** SQL conf naming the Python data source that does the actual reading and writing. */
  public static final String PYTHON_SOURCE_CONF = "spark.lakehouse.delta.pythonSource";

  /** Short name of the platform's delta-rs backed Python data source. */
  public static final String DEFAULT_PYTHON_SOURCE = "deltars";

  private PythonDataSourceV2 delegate;
  private String sourceName;

  @Override
  public String shortName() {
    return "delta";
  }

  /** The wrapped Python data source (created on first use, in the calling session). */
  synchronized PythonDataSourceV2 delegate() {
    if (delegate == null) {
      sourceName = SQLConf.get().getConfString(PYTHON_SOURCE_CONF, DEFAULT_PYTHON_SOURCE);
      ShimOptions.requirePythonSource(sourceName);
      PythonDataSourceV2 ds = new PythonDataSourceV2();
      ds.setShortName(sourceName);
      delegate = ds;
    }
    return delegate;
  }

  @Override
  public StructType inferSchema(CaseInsensitiveStringMap options) {
    CaseInsensitiveStringMap merged = ShimOptions.merge(options.asCaseSensitiveMap(), null, null);
    if (ShimOptions.location(merged.asCaseSensitiveMap()) == null) {
      throw new IllegalArgumentException(
          "format delta needs a table location: CREATE TABLE ... USING delta LOCATION '<path>' "
              + "(or a schema / AS SELECT for a managed table), or .load('<path>')");
    }
    return delegate().inferSchema(merged);
  }

  @Override
  public Transform[] inferPartitioning(CaseInsensitiveStringMap options) {
    return DeltaLogPartitions.read(ShimOptions.location(options.asCaseSensitiveMap()));
  }

  @Override
  public Table getTable(StructType schema, Transform[] partitioning, Map<String, String> properties) {
    PythonDataSourceV2 ds = delegate();
    return new DeltaShimTable(ds, sourceName, schema, partitioning, properties);
  }

  @Override
  public boolean supportsExternalMetadata() {
    return true;
  }
}
