package facm.cuda.blas;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import facm.tensor.Bf16;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The binding's plumbing checked without a GPU: {@link #MOCK_SOURCE} is a host-memory stand-in for libcublasLt,
 * written from the cuBLASLt documentation (column-major semantics, attribute sizes, in-place C == D, the algorithm's
 * alignment demands), compiled with the machine's C compiler and bound through {@link CublasLt#open(NativeLibrary)}.
 * "Device pointers" are host pointers here. This catches a wrong argument order, a wrong attribute size, a wrong
 * row-major to column-major mapping or an alignment mix-up; it cannot catch a wrong enum value shared by both sides,
 * which is what the GPU test ({@link CublasLtGemmTest}) is for. Skipped where there is no C compiler.
 */
class CublasLtMockLibraryTest {
    private static CublasLt lt;
    private static Arena arena;
    private static MemorySegment workspace;
    private static Path dir;

    @BeforeAll
    static void buildMock() throws IOException, InterruptedException {
        dir = Files.createTempDirectory("facm-cublaslt-mock");
        Path source = dir.resolve("mock.c");
        Files.writeString(source, MOCK_SOURCE);
        Path library = dir.resolve("libfacm-cublaslt-mock.so");
        Process cc;
        try {
            cc = new ProcessBuilder("cc", "-O1", "-shared", "-fPIC", "-o", library.toString(), source.toString())
                    .redirectErrorStream(true).start();
        } catch (IOException noCompiler) {
            Assumptions.abort("no C compiler (cc) to build the mock cuBLASLt: " + noCompiler.getMessage());
            return;
        }
        String output = new String(cc.getInputStream().readAllBytes());
        assertTrue(cc.waitFor(60, TimeUnit.SECONDS) && cc.exitValue() == 0, "mock cuBLASLt did not compile:\n"
                + output);
        lt = CublasLt.open(NativeLibrary.load("mock cuBLASLt", List.of(library.getFileName().toString()),
                List.of(dir)));
        arena = Arena.ofShared();
        workspace = arena.allocate(CublasLt.RECOMMENDED_WORKSPACE_BYTES, 256);
    }

    @AfterAll
    static void close() throws IOException {
        if (lt != null) {
            lt.close();
        }
        if (arena != null) {
            arena.close();
        }
        if (dir != null) {
            try (var files = Files.list(dir)) {
                for (Path p : files.toList()) {
                    Files.deleteIfExists(p);
                }
            }
            Files.deleteIfExists(dir);
        }
    }

    @ParameterizedTest
    @EnumSource(GemmKind.class)
    void everyLayoutTheGpuTestCoversMapsCorrectly(GemmKind kind) {
        check(RowMajorGemm.batched(kind, false, false, 37, 53, 29, 3), 0);
        check(RowMajorGemm.batched(kind, true, false, 37, 53, 29, 3), 0);
        check(RowMajorGemm.batched(kind, false, true, 37, 53, 29, 3), 0);
        check(RowMajorGemm.of(kind, true, true, 37, 53, 29).withScalars(0.75f, 0f), 0);
        check(RowMajorGemm.batched(kind, false, true, 37, 53, 29, 3).withStrides(37L * 29, 0, 37L * 53)
                .withScalars(1f, 0.5f), 0);
        check(RowMajorGemm.batched(kind, true, false, 37, 53, 29, 2).withStrides(0, 29L * 53, 37L * 53)
                .withScalars(-1.5f, -1.25f), 0);
        check(RowMajorGemm.batched(kind, false, false, 37, 53, 29, 2).withStrides(37L * 29 + 3, 29L * 53 + 5,
                37L * 53 + 7), 0);
        check(RowMajorGemm.batched(kind, false, true, 40, 48, 64, 2).withScalars(1f, 1f), 1);
        check(RowMajorGemm.batched(kind, true, true, 7, 1, 13, 4), 3);
    }

    @ParameterizedTest
    @EnumSource(GemmKind.class)
    void eachOperandsAlignmentReachesItsOwnPreference(GemmKind kind) {
        // One operand at a time one element off: the mock refuses a pointer less aligned than the algorithm was
        // chosen for, so a swapped A/B preference fails here.
        RowMajorGemm g = RowMajorGemm.of(kind, false, true, 8, 12, 16);
        check(g, 0);
        for (int operand = 0; operand < 3; operand++) {
            try (Arena local = Arena.ofConfined()) {
                long[] p = new long[3];
                for (int i = 0; i < 3; i++) {
                    int element = i < 2 ? kind.inputElementBytes() : kind.outputElementBytes();
                    p[i] = local.allocate(4096, 256).address() + (i == operand ? element : 0);
                }
                lt.gemm(0, g, p[0], p[1], p[2], workspace.address(), workspace.byteSize());
            }
        }
    }

    @ParameterizedTest
    @EnumSource(GemmKind.class)
    void scalarsShareAPlanAndWorkspaceSizeDoesNot(GemmKind kind) {
        RowMajorGemm g = RowMajorGemm.batched(kind, false, false, 33, 35, 31, 2);
        check(g, 0);
        int plans = lt.planCount();
        check(g.withScalars(2f, 1f), 0);
        check(g, 0);
        assertEquals(plans, lt.planCount());
        try (Arena local = Arena.ofConfined()) {
            long a = local.allocate(g.aElements() * 4, 256).address();
            long b = local.allocate(g.bElements() * 4, 256).address();
            long c = local.allocate(g.cElements() * 4, 256).address();
            lt.gemm(0, g, a, b, c, 0, 0);
        }
        assertEquals(plans + 1, lt.planCount());
    }

    private static void check(RowMajorGemm g, int offset) {
        GemmKind kind = g.kind();
        boolean bf16In = kind.inputElementBytes() == 2;
        boolean bf16Out = kind.outputElementBytes() == 2;
        Random random = new Random(g.describe().hashCode());
        float[] a = GemmReference.randomValues(g.aElements() + offset, bf16In, random);
        float[] b = GemmReference.randomValues(g.bElements() + offset, bf16In, random);
        float[] c0 = GemmReference.randomValues(g.cElements() + offset, bf16Out, random);
        if (g.beta() == 0) {
            Arrays.fill(c0, Float.NaN);
        }
        try (Arena local = Arena.ofConfined()) {
            MemorySegment da = hostCopy(local, a, bf16In);
            MemorySegment db = hostCopy(local, b, bf16In);
            MemorySegment dc = hostCopy(local, c0, bf16Out);
            long inOffset = (long) offset * kind.inputElementBytes();
            lt.gemm(0, g, da.address() + inOffset, db.address() + inOffset,
                    dc.address() + (long) offset * kind.outputElementBytes(), workspace.address(),
                    workspace.byteSize());
            float[] got = new float[c0.length];
            for (int i = 0; i < got.length; i++) {
                got[i] = bf16Out ? Bf16.toFloat(dc.getAtIndex(ValueLayout.JAVA_SHORT, i))
                        : dc.getAtIndex(ValueLayout.JAVA_FLOAT, i);
            }
            assertNull(GemmReference.check(g, a, b, c0, got, offset));
        }
    }

    private static MemorySegment hostCopy(Arena arena, float[] values, boolean bf16) {
        MemorySegment s = arena.allocate((long) values.length * (bf16 ? 2 : 4), 256);
        for (int i = 0; i < values.length; i++) {
            if (bf16) {
                s.setAtIndex(ValueLayout.JAVA_SHORT, i, Bf16.fromFloat(values[i]));
            } else {
                s.setAtIndex(ValueLayout.JAVA_FLOAT, i, values[i]);
            }
        }
        return s;
    }

    /** The stand-in library: the cuBLASLt entry points we bind, over host memory, with fp32 accumulation. */
    private static final String MOCK_SOURCE = """
/* Host-memory stand-in for libcublasLt, written from the cuBLASLt documentation, to check the Java binding's
   argument passing, attribute sizes and row-major mapping without a GPU. "Device pointers" are host pointers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

typedef struct { int compute, scale, pmode, transa, transb; } Desc;
typedef struct { int type; uint64_t rows, cols; int64_t ld; int batch; int64_t stride; } Layout;
typedef struct { uint64_t maxws; uint32_t align[4]; } Pref;
typedef struct { uint64_t data[8]; } Algo;
typedef struct { Algo algo; size_t ws; int state; float waves; int reserved[4]; } Result;

int mock_calls = 0, mock_heuristics = 0;
#define INVALID 7
#define NOTSUP 15

int cublasLtCreate(void **h) { *h = malloc(16); return 0; }
int cublasLtDestroy(void *h) { free(h); return 0; }
size_t cublasLtGetVersion(void) { return 130100; }
int cublasLtMatmulDescCreate(Desc **d, int compute, int scale) {
  if (compute != 68 && compute != 77) return INVALID;
  if (scale != 0) return INVALID;
  *d = calloc(1, sizeof(Desc)); (*d)->compute = compute; (*d)->scale = scale; return 0; }
int cublasLtMatmulDescDestroy(Desc *d) { free(d); return 0; }
int cublasLtMatmulDescSetAttribute(Desc *d, int attr, const void *buf, size_t size) {
  if (size != 4) return INVALID;
  int v = *(const int *)buf;
  if (attr == 2) d->pmode = v; else if (attr == 3) d->transa = v; else if (attr == 4) d->transb = v; else return INVALID;
  return 0; }
int cublasLtMatrixLayoutCreate(Layout **l, int type, uint64_t rows, uint64_t cols, int64_t ld) {
  if (type != 0 && type != 14) return INVALID;
  if (ld < (int64_t)rows) return INVALID;
  *l = calloc(1, sizeof(Layout)); (*l)->type = type; (*l)->rows = rows; (*l)->cols = cols; (*l)->ld = ld;
  (*l)->batch = 1; return 0; }
int cublasLtMatrixLayoutDestroy(Layout *l) { free(l); return 0; }
int cublasLtMatrixLayoutSetAttribute(Layout *l, int attr, const void *buf, size_t size) {
  if (attr == 5 && size == 4) { l->batch = *(const int *)buf; return 0; }
  if (attr == 6 && size == 8) { l->stride = *(const int64_t *)buf; return 0; }
  return INVALID; }
int cublasLtMatmulPreferenceCreate(Pref **p) { *p = calloc(1, sizeof(Pref)); for (int i = 0; i < 4; i++) (*p)->align[i] = 256; return 0; }
int cublasLtMatmulPreferenceDestroy(Pref *p) { free(p); return 0; }
int cublasLtMatmulPreferenceSetAttribute(Pref *p, int attr, const void *buf, size_t size) {
  if (attr == 1 && size == 8) { p->maxws = *(const uint64_t *)buf; return 0; }
  if (attr >= 5 && attr <= 8 && size == 4) { p->align[attr - 5] = *(const uint32_t *)buf; return 0; }
  if (attr == 3 && size == 4 && *(const uint32_t *)buf <= 7) return 0; /* reduction-scheme mask */
  return INVALID; }

static int shape(Desc *d, Layout *A, Layout *B, Layout *C, Layout *D, uint64_t *M, uint64_t *N, uint64_t *K) {
  uint64_t am = d->transa ? A->cols : A->rows, ak = d->transa ? A->rows : A->cols;
  uint64_t bk = d->transb ? B->cols : B->rows, bn = d->transb ? B->rows : B->cols;
  if (ak != bk || C->rows != am || C->cols != bn) return INVALID;
  if (A->type != B->type || C->type != D->type || C->ld != D->ld || C->rows != D->rows) return INVALID;
  if (A->batch != C->batch || B->batch != C->batch || D->batch != C->batch || D->stride != C->stride) return INVALID;
  if (A->type == 0 && C->type != 0) return NOTSUP;
  *M = am; *N = bn; *K = ak; return 0; }

int cublasLtMatmulAlgoGetHeuristic(void *h, Desc *d, Layout *A, Layout *B, Layout *C, Layout *D, Pref *p,
                                   int requested, Result *results, int *count) {
  uint64_t M, N, K; int s = shape(d, A, B, C, D, &M, &N, &K);
  mock_heuristics++;
  if (s) return s;
  if (requested < 1) return INVALID;
  memset(results, 0, sizeof(Result));
  results->algo.data[0] = 0xfacefeed;
  for (int i = 0; i < 4; i++) results->algo.data[1 + i] = p->align[i];
  results->ws = p->maxws >= 4096 ? 4096 : 0;
  results->algo.data[5] = results->ws;
  results->state = 0; results->waves = 1.0f;
  *count = 1; return 0; }

static float load(int type, const void *base, int64_t idx) {
  if (type == 0) return ((const float *)base)[idx];
  uint32_t bits = (uint32_t)((const uint16_t *)base)[idx] << 16; float f; memcpy(&f, &bits, 4); return f; }
static void store(int type, void *base, int64_t idx, float v) {
  if (type == 0) { ((float *)base)[idx] = v; return; }
  uint32_t bits; memcpy(&bits, &v, 4); bits += 0x7fff + ((bits >> 16) & 1); ((uint16_t *)base)[idx] = bits >> 16; }

int cublasLtMatmul(void *h, Desc *d, const float *alpha, const void *A, Layout *Al, const void *B, Layout *Bl,
                   const float *beta, const void *C, Layout *Cl, void *D, Layout *Dl, const Algo *algo,
                   void *ws, size_t wsSize, void *stream) {
  uint64_t M, N, K; int s = shape(d, Al, Bl, Cl, Dl, &M, &N, &K);
  mock_calls++;
  if (s) return s;
  if (!algo || algo->data[0] != 0xfacefeed) return INVALID;
  if (d->pmode != 0) return INVALID;
  if (wsSize < algo->data[5] || (algo->data[5] && !ws)) return INVALID;
  const void *ptrs[4] = {A, B, C, D};
  for (int i = 0; i < 4; i++) if ((uintptr_t)ptrs[i] % algo->data[1 + i] != 0) { fprintf(stderr, "mock: pointer %d misaligned for algo\\n", i); return INVALID; }
  if (C != D) return NOTSUP;
  for (int b = 0; b < Cl->batch; b++) {
    for (uint64_t j = 0; j < N; j++) for (uint64_t i = 0; i < M; i++) {
      float sum = 0;
      for (uint64_t p = 0; p < K; p++) {
        int64_t ai = b * Al->stride + (d->transa ? (int64_t)(p + i * Al->ld) : (int64_t)(i + p * Al->ld));
        int64_t bi = b * Bl->stride + (d->transb ? (int64_t)(j + p * Bl->ld) : (int64_t)(p + j * Bl->ld));
        sum += load(Al->type, A, ai) * load(Bl->type, B, bi);
      }
      int64_t ci = b * Cl->stride + (int64_t)(i + j * Cl->ld);
      float v = *alpha * sum + (*beta != 0 ? *beta * load(Cl->type, C, ci) : 0);
      store(Dl->type, D, ci, v);
    }
  }
  return 0; }
""";
}
