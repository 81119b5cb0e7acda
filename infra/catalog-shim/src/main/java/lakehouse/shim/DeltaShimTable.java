package lakehouse.shim;

import java.util.Collections;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;

import org.apache.spark.sql.connector.catalog.SupportsRead;
import org.apache.spark.sql.connector.catalog.SupportsWrite;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableCapability;
import org.apache.spark.sql.connector.catalog.TableCatalog;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.connector.read.ScanBuilder;
import org.apache.spark.sql.connector.write.LogicalWriteInfo;
import org.apache.spark.sql.connector.write.WriteBuilder;
import org.apache.spark.sql.execution.datasources.v2.python.PythonDataSourceV2;
import org.apache.spark.sql.execution.datasources.v2.python.PythonTable;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

/**
 * A Delta table seen through the Python data source: Spark's own {@link PythonTable} does the
 * work; this class only adds the table location ({@code path}) and the partition columns
 * ({@code partitionBy}) to the options of each scan and write, and reports the partitioning.
 */
public final class DeltaShimTable implements Table, SupportsRead, SupportsWrite {

  private final PythonTable inner;
  private final StructType schema;
  private final Transform[] partitioning;
  private final Map<String, String> properties;
  private Boolean unpartitioned;

  DeltaShimTable(
      PythonDataSourceV2 ds,
      String sourceName,
      StructType schema,
      Transform[] partitioning,
      Map<String, String> properties) {
    this.inner = new PythonTable(ds, sourceName, schema);
    this.schema = schema;
    this.partitioning = partitioning == null ? new Transform[0] : partitioning;
    Map<String, String> props = new HashMap<>(properties == null ? Map.of() : properties);
    String location = ShimOptions.location(props);
    if (location != null && !props.containsKey(TableCatalog.PROP_LOCATION)) {
      props.put(TableCatalog.PROP_LOCATION, location); // DESCRIBE ... EXTENDED shows it as Location
    }
    if (location != null && !props.containsKey(TableCatalog.PROP_EXTERNAL)
        && !ShimOptions.underWarehouse(location)) {
      // Spark hands a TableProvider only the storage options, not the table type: report tables
      // outside the warehouse as EXTERNAL (DESCRIBE, catalog.listTables). DROP TABLE does not use
      // this; it follows the type stored in the metastore.
      props.put(TableCatalog.PROP_EXTERNAL, "true");
    }
    this.properties = Collections.unmodifiableMap(props);
  }

  @Override
  public String name() {
    String location = ShimOptions.location(properties);
    return location == null ? "delta" : "delta.`" + location + "`";
  }

  @Override
  @SuppressWarnings("deprecation")
  public StructType schema() {
    return schema;
  }

  @Override
  public Transform[] partitioning() {
    return partitioning.clone();
  }

  @Override
  public Map<String, String> properties() {
    return properties;
  }

  @Override
  public Set<TableCapability> capabilities() {
    Set<TableCapability> caps = EnumSet.noneOf(TableCapability.class);
    caps.addAll(inner.capabilities());
    if (isUnpartitioned()) {
      caps.add(TableCapability.OVERWRITE_DYNAMIC); // e.g. dbt's insert_overwrite strategy
    }
    return caps;
  }

  /** No partitioning in the catalog nor in the Delta log (which may differ, see DeltaLogPartitions). */
  private synchronized boolean isUnpartitioned() {
    if (unpartitioned == null) {
      unpartitioned =
          partitioning.length == 0
              && DeltaLogPartitions.logPartitionColumns(ShimOptions.location(properties)).isEmpty();
    }
    return unpartitioned;
  }

  private Map<String, String> storageOptions() {
    Map<String, String> options = new HashMap<>(properties);
    options.remove(TableCatalog.PROP_EXTERNAL);
    return options;
  }

  @Override
  public ScanBuilder newScanBuilder(CaseInsensitiveStringMap options) {
    return inner.newScanBuilder(ShimOptions.merge(storageOptions(), options.asCaseSensitiveMap(), null));
  }

  @Override
  public WriteBuilder newWriteBuilder(LogicalWriteInfo info) {
    CaseInsensitiveStringMap merged =
        ShimOptions.merge(storageOptions(), info.options().asCaseSensitiveMap(), partitioning);
    return new ShimWriteBuilder(inner.newWriteBuilder(new ShimWriteInfo(info, merged)));
  }
}
