#include "evalmetrics.h"

#include <math.h>
#include <stdlib.h>

static int by_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double evalmetrics_auc(double *normal, size_t nn, double *attack, size_t na)
{
    qsort(normal, nn, sizeof *normal, by_double);
    qsort(attack, na, sizeof *attack, by_double);
    if (!nn || !na)
        return NAN;
    /* For each attack score: normals below it count 1, equal count 1/2. */
    double sum = 0;
    size_t lo = 0, hi = 0;
    for (size_t i = 0; i < na; i++) {
        while (lo < nn && normal[lo] < attack[i])
            lo++;
        if (hi < lo)
            hi = lo;
        while (hi < nn && normal[hi] <= attack[i])
            hi++;
        sum += (double)lo + 0.5 * (double)(hi - lo);
    }
    return sum / ((double)nn * (double)na);
}

/* Number of values in a sorted array strictly above t. */
static size_t count_above(const double *v, size_t n, double t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return n - lo;
}

double evalmetrics_tpr_at(const double *normal, size_t nn, const double *attack, size_t na,
                          double fpr, double *threshold)
{
    if (!nn || !na)
        return NAN;
    size_t allowed = (size_t)floor(fpr * (double)nn);
    if (allowed >= nn)
        allowed = nn - 1;
    double t = normal[nn - 1 - allowed];
    if (threshold)
        *threshold = t;
    return (double)count_above(attack, na, t) / (double)na;
}

void evalmetrics_roc_csv(FILE *out, const char *model, const double *normal, size_t nn,
                         const double *attack, size_t na)
{
    /* One point per distinct normal score, from the highest down, plus the end points. */
    fprintf(out, "%s,inf,0,%.6f\n", model,
            nn ? (double)count_above(attack, na, normal[nn - 1]) / (double)(na ? na : 1) : 0.0);
    for (size_t i = nn; i-- > 0;) {
        if (i + 1 < nn && normal[i] == normal[i + 1])
            continue;
        double t = i > 0 ? normal[i - 1] : -INFINITY;
        double fpr = (double)count_above(normal, nn, t) / (double)nn;
        double tpr = (double)count_above(attack, na, t) / (double)(na ? na : 1);
        fprintf(out, "%s,%.10g,%.6f,%.6f\n", model, t, fpr, tpr);
    }
}

void evalmetrics_roc_svg(FILE *out, int models, const char *const *names,
                         const double *const *normal, size_t nn, const double *const *attack,
                         size_t na)
{
    static const char *colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
    const double W = 480, H = 480, L = 60, T = 30;
    fprintf(out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"560\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"600\" height=\"560\" fill=\"white\"/>\n"
            "<text x=\"300\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">ROC: sipguard "
            "eval</text>\n"
            "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"black\"/>\n",
            L, T, W, H);
    for (int g = 0; g <= 10; g++) {
        double x = L + W * g / 10.0, y = T + H - H * g / 10.0;
        fprintf(out,
                "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#ddd\"/>"
                "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#ddd\"/>\n"
                "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%.1f</text>"
                "<text x=\"%g\" y=\"%g\" text-anchor=\"end\">%.1f</text>\n",
                x, T, x, T + H, L, y, L + W, y, x, T + H + 16, g / 10.0, L - 6, y + 4, g / 10.0);
    }
    fprintf(out,
            "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">false-positive rate</text>\n"
            "<text x=\"16\" y=\"%g\" transform=\"rotate(-90 16 %g)\" "
            "text-anchor=\"middle\">true-positive rate</text>\n",
            L + W / 2, T + H + 36, T + H / 2, T + H / 2);
    for (int m = 0; m < models && m < 4; m++) {
        fprintf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                colours[m]);
        fprintf(out, "%g,%g ", L, T + H);
        for (size_t i = nn + 1; i-- > 0;) {
            double t = i == nn ? INFINITY : (i > 0 ? normal[m][i - 1] : -INFINITY);
            if (i < nn && i + 1 < nn && normal[m][i] == normal[m][i + 1])
                continue;
            double fpr = i == nn ? 0 : (double)count_above(normal[m], nn, t) / (double)nn;
            double tpr = (double)count_above(attack[m], na, i == nn ? normal[m][nn - 1] : t) /
                         (double)(na ? na : 1);
            fprintf(out, "%.2f,%.2f ", L + W * fpr, T + H - H * tpr);
        }
        fprintf(out, "%g,%g\"/>\n", L + W, T);
        fprintf(out,
                "<rect x=\"%g\" y=\"%g\" width=\"14\" height=\"4\" fill=\"%s\"/>"
                "<text x=\"%g\" y=\"%g\">%s</text>\n",
                L + W - 150, T + H - 60 + 18.0 * m, colours[m], L + W - 130, T + H - 55 + 18.0 * m,
                names[m]);
    }
    fprintf(out, "</svg>\n");
}
