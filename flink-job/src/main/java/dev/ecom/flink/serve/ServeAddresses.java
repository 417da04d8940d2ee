// Several ecom serve instances behind one channel: grpc-java's round_robin over a fixed list.
package dev.ecom.flink.serve;

import io.grpc.EquivalentAddressGroup;
import io.grpc.NameResolver;
import io.grpc.NameResolverProvider;
import io.grpc.NameResolverRegistry;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;

/**
 * The {@code --serve-address} of the job: one gRPC target ({@code host:port}, or {@code
 * dns:///name:port}, resolved by grpc-java to every address the name has), or several {@code
 * host:port} separated by commas, which become the target {@code
 * ecom-serve-list:///host:port,host:port}, resolved once to that list. The channel balances calls
 * round robin across the addresses that answer (ServeSecurity): a stopped instance leaves the
 * rotation until it answers again, and the calls it was serving when it stopped fall back as any
 * failed call does.
 */
public final class ServeAddresses extends NameResolverProvider {
  static final String SCHEME = "ecom-serve-list";

  private static final ServeAddresses INSTANCE = new ServeAddresses();

  static {
    NameResolverRegistry.getDefaultRegistry().register(INSTANCE);
  }

  /** The channel target for {@code addresses} ("host:port" or "host:port,host:port,..."). */
  public static String target(String addresses) {
    List<InetSocketAddress> list = parse(addresses);
    return list.size() == 1 ? addresses.trim() : SCHEME + ":///" + addresses.replace(" ", "");
  }

  /** Each {@code host:port} of a comma-separated list, unresolved; a malformed one throws. */
  public static List<InetSocketAddress> parse(String addresses) {
    List<InetSocketAddress> out = new ArrayList<>();
    for (String a : addresses.split(",")) {
      String s = a.trim();
      int colon = s.lastIndexOf(':');
      if (colon <= 0 || colon == s.length() - 1) {
        throw new IllegalArgumentException(
            "--serve-address: '" + s + "' is not host:port (several: host:port,host:port)");
      }
      int port;
      try {
        port = Integer.parseInt(s.substring(colon + 1));
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("--serve-address: bad port in '" + s + "'", e);
      }
      out.add(InetSocketAddress.createUnresolved(s.substring(0, colon), port));
    }
    return out;
  }

  @Override
  protected boolean isAvailable() {
    return true;
  }

  @Override
  protected int priority() {
    return 5;
  }

  @Override
  public String getDefaultScheme() {
    return SCHEME;
  }

  @Override
  public NameResolver newNameResolver(URI uri, NameResolver.Args args) {
    if (!SCHEME.equals(uri.getScheme())) {
      return null;
    }
    List<InetSocketAddress> list = parse(uri.getPath().substring(1));
    return new NameResolver() {
      @Override
      public String getServiceAuthority() {
        // TLS checks each instance's certificate against the first host's name.
        return list.get(0).getHostString();
      }

      @Override
      public void start(Listener2 listener) {
        List<EquivalentAddressGroup> groups = new ArrayList<>();
        for (InetSocketAddress a : list) {
          SocketAddress resolved = new InetSocketAddress(a.getHostString(), a.getPort());
          groups.add(new EquivalentAddressGroup(resolved));
        }
        listener.onResult(ResolutionResult.newBuilder().setAddresses(groups).build());
      }

      @Override
      public void shutdown() {}
    };
  }
}
