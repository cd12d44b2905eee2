// The baseline of benchmark 11 (benchmarks/cpp_euler.py): the ODEs of the erf soft committee
// machine (g(x) = erf(x/√2), second layers fixed to 1; Saad & Solla 1995) integrated by forward
// Euler at a fixed step, every I3 and I4 closed form evaluated at every step, as nn2pp's
// scmpp_ode integrates them (Goldt et al. 2019, dt = 0.01). Written here from the equations
// (nn2pp needs Armadillo), in the conventions of docs/conventions.md.
//
// usage: erf_ode K M LR T_END DT < Q R T (K×K, K×M, M×M numbers, row-major)
// prints: the final ε_g, then the number of Euler steps
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

double I2(double caa, double cab, double cbb) {  // <g(u_a) g(u_b)>
  return 2.0 / M_PI * std::asin(cab / std::sqrt((1 + caa) * (1 + cbb)));
}

double I3(double caa, double cab, double cac, double cbc, double ccc) {  // <g'(u_a) u_b g(u_c)>
  double lambda3 = (1 + caa) * (1 + ccc) - cac * cac;
  return 2.0 / M_PI / std::sqrt(lambda3) * (cbc * (1 + caa) - cab * cac) / (1 + caa);
}

double I4(double caa, double cab, double cac, double cad, double cbb, double cbc, double cbd, double ccc,
          double ccd, double cdd) {  // <g'(u_a) g'(u_b) g(u_c) g(u_d)>
  double lambda4 = (1 + caa) * (1 + cbb) - cab * cab;
  double lambda0 = lambda4 * ccd - cbd * cbc * (1 + caa) - cad * cac * (1 + cbb) + cab * cac * cbd + cab * cad * cbc;
  double lambda1 = lambda4 * (1 + ccc) - cbc * cbc * (1 + caa) - cac * cac * (1 + cbb) + 2 * cab * cac * cbc;
  double lambda2 = lambda4 * (1 + cdd) - cbd * cbd * (1 + caa) - cad * cad * (1 + cbb) + 2 * cab * cad * cbd;
  return 4.0 / (M_PI * M_PI) / std::sqrt(lambda4) * std::asin(lambda0 / std::sqrt(lambda1 * lambda2));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: erf_ode K M LR T_END DT < Q R T\n");
    return 2;
  }
  const int K = std::atoi(argv[1]), M = std::atoi(argv[2]), J = K + M;
  const double lr = std::atof(argv[3]), t_end = std::atof(argv[4]), dt = std::atof(argv[5]);
  std::vector<double> O(J * J);  // Ω = [[Q, R], [Rᵀ, T]], students first
  for (int i = 0; i < K; ++i)
    for (int k = 0; k < K; ++k)
      if (std::scanf("%lf", &O[i * J + k]) != 1) return 2;
  for (int i = 0; i < K; ++i)
    for (int n = 0; n < M; ++n) {
      if (std::scanf("%lf", &O[i * J + K + n]) != 1) return 2;
      O[(K + n) * J + i] = O[i * J + K + n];
    }
  for (int n = 0; n < M; ++n)
    for (int m = 0; m < M; ++m)
      if (std::scanf("%lf", &O[(K + n) * J + K + m]) != 1) return 2;
  std::vector<double> a(J), dO(J * J);  // a: the error's readout, −1 on students, +1 on teachers
  for (int c = 0; c < J; ++c) a[c] = c < K ? -1.0 : 1.0;
  auto o = [&](int p, int q) { return O[p * J + q]; };
  const long steps = std::lround(t_end / dt);
  for (long step = 0; step < steps; ++step) {
    for (int i = 0; i < K; ++i)
      for (int b = i; b < J; ++b) {  // b < K: dQ_ib; b ≥ K: dR_i,b−K
        double drift = 0.0;
        for (int c = 0; c < J; ++c) {
          drift += a[c] * I3(o(i, i), o(i, b), o(i, c), o(b, c), o(c, c));
          if (b < K) drift += a[c] * I3(o(b, b), o(b, i), o(b, c), o(i, c), o(c, c));
        }
        double value = lr * drift;
        if (b < K) {
          double noise = 0.0;
          for (int c = 0; c < J; ++c)
            for (int d = 0; d < J; ++d)
              noise += a[c] * a[d] * I4(o(i, i), o(i, b), o(i, c), o(i, d), o(b, b), o(b, c), o(b, d), o(c, c), o(c, d),
                                        o(d, d));
          value += lr * lr * noise;
        }
        dO[i * J + b] = value;
      }
    for (int i = 0; i < K; ++i)
      for (int b = i; b < J; ++b) {
        O[i * J + b] += dt * dO[i * J + b];
        O[b * J + i] = O[i * J + b];
      }
  }
  double eg = 0.0;
  for (int c = 0; c < J; ++c)
    for (int d = 0; d < J; ++d) eg += 0.5 * a[c] * a[d] * I2(o(c, c), o(c, d), o(d, d));
  std::printf("%.12g\n%ld\n", eg, steps);
  return 0;
}
