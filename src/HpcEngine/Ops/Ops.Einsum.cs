namespace HpcEngine;

/// <summary>torch.einsum over letters a–z / A–Z and the ellipsis: planned as permutes, reshapes and batched matmuls,
/// so autograd differentiates it through those. Each operand first takes the diagonal of any letter it repeats and
/// sums the letters nobody else needs; operands are then contracted left to right, each pair as one batched matmul
/// [batch, m, k] @ [batch, k, n]; the result is permuted to the output's order.</summary>
public static partial class Ops
{
    /// <summary>torch.einsum: e.g. "ij,jk->ik" (matmul), "bij,bjk->bik", "ii->i" (diagonal), "ij->" (sum), "i,j->ij"
    /// (outer), "...ij,...jk->...ik" (the ellipsis: the dims no letter names, right-aligned and broadcast across the
    /// operands as PyTorch does). Without "->" the output is the ellipsis' dims, then the letters that occur once, in
    /// alphabetical order.</summary>
    public static Tensor Einsum(string equation, params Tensor[] operands)
    {
        ArgumentNullException.ThrowIfNull(equation);
        ArgumentNullException.ThrowIfNull(operands);
        if (!equation.Contains("...", StringComparison.Ordinal))
            return EinsumNamed(equation, equation, operands);
        var (named, expanded) = NameEllipsis(equation, operands);
        try
        {
            return EinsumNamed(equation, named, expanded);
        }
        finally
        {
            foreach (var t in expanded)
                t.Dispose();
        }
    }

    /// <summary>The equation with each "..." replaced by fresh letters for the dims it stands for (right-aligned:
    /// an operand with fewer such dims takes the last ones), and the operands expanded where a dim of size 1 meets a
    /// larger one (broadcast; autograd sums the gradient back).</summary>
    private static (string Equation, Tensor[] Operands) NameEllipsis(string equation, Tensor[] operands)
    {
        var eq = equation.Replace(" ", "");
        var parts = eq.Split("->");
        var inputs = parts[0].Split(',');
        if (inputs.Length != operands.Length)
            throw new ArgumentException(
                $"einsum '{equation}': {inputs.Length} operand spec(s) for {operands.Length} tensor(s)"
            );
        var spare = new Queue<char>("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".Where(c => !eq.Contains(c)));
        var dims = new int[operands.Length];
        for (int i = 0; i < inputs.Length; i++)
        {
            int count = inputs[i].Split("...").Length - 1;
            if (count > 1)
                throw new ArgumentException($"einsum '{equation}': operand {i} has more than one ellipsis");
            int named = inputs[i].Replace("...", "").Length;
            dims[i] = count == 1 ? operands[i].Rank - named : 0;
            if (dims[i] < 0 || (count == 0 && named != operands[i].Rank))
                throw new ShapeMismatchException(
                    $"einsum '{equation}': operand {i} spec '{inputs[i]}' does not fit its shape "
                        + Shapes.Format(operands[i].Shape)
                );
        }
        int rank = dims.Max();
        if (rank > spare.Count)
            throw new ArgumentException($"einsum '{equation}': the ellipsis needs more letters than are free");
        string letters = string.Concat(Enumerable.Range(0, rank).Select(_ => spare.Dequeue()));
        // The broadcast size of each ellipsis dim, and each operand expanded to it.
        var sizes = new int[rank];
        Array.Fill(sizes, 1);
        for (int i = 0; i < operands.Length; i++)
        {
            int start = inputs[i].IndexOf("...", StringComparison.Ordinal);
            for (int d = 0; d < dims[i]; d++)
            {
                int size = operands[i].Shape[start + d],
                    at = rank - dims[i] + d;
                if (size != 1 && sizes[at] != 1 && sizes[at] != size)
                    throw new ShapeMismatchException(
                        $"einsum '{equation}': the ellipsis dims do not broadcast (operand {i} has {size} where "
                            + $"another has {sizes[at]})"
                    );
                if (size != 1)
                    sizes[at] = size;
            }
        }
        var expanded = new Tensor[operands.Length];
        for (int i = 0; i < operands.Length; i++)
        {
            int start = inputs[i].IndexOf("...", StringComparison.Ordinal);
            var shape = operands[i].ShapeArray;
            for (int d = 0; d < dims[i]; d++)
                shape[start + d] = sizes[rank - dims[i] + d];
            expanded[i] = shape.SequenceEqual(operands[i].ShapeArray)
                ? Identity(operands[i])
                : Expand(operands[i], shape);
            inputs[i] = inputs[i].Replace("...", letters[(rank - dims[i])..]);
        }
        string all = parts[0].Replace("...", "").Replace(",", "");
        string output =
            parts.Length == 2
                ? parts[1].Replace("...", letters)
                : letters + string.Concat(all.Distinct().Where(c => all.Count(x => x == c) == 1).Order());
        return (string.Join(",", inputs) + "->" + output, expanded);
    }

    private static Tensor EinsumNamed(string equation, string named, Tensor[] operands)
    {
        var (inputs, output) = ParseEinsum(equation, named, operands);
        var sizes = new Dictionary<char, int>();
        for (int i = 0; i < operands.Length; i++)
        for (int k = 0; k < inputs[i].Length; k++)
        {
            char c = inputs[i][k];
            int size = operands[i].Shape[k];
            if (sizes.TryGetValue(c, out int seen) && seen != size)
                throw new ShapeMismatchException(
                    $"einsum '{equation}': letter '{c}' is {seen} in one place and {size} in operand {i} (shape "
                        + $"{Shapes.Format(operands[i].Shape)})"
                );
            sizes[c] = size;
        }
        var terms = new List<(Tensor T, string L)>();
        try
        {
            for (int i = 0; i < operands.Length; i++)
            {
                string needed = output + string.Concat(inputs.Where((_, j) => j != i));
                terms.Add(Prepare(operands[i], inputs[i], needed));
            }
            while (terms.Count > 1)
            {
                string later = output + string.Concat(terms.Skip(2).Select(t => t.L));
                var merged = Contract(terms[0], terms[1], later);
                terms[0].T.Dispose();
                terms[1].T.Dispose();
                terms.RemoveRange(0, 2);
                terms.Insert(0, merged);
            }
            var (result, letters) = terms[0];
            terms.Clear();
            using (result)
                return Permute(result, output.Select(c => letters.IndexOf(c)).ToArray());
        }
        finally
        {
            foreach (var (t, _) in terms)
                t.Dispose();
        }
    }

    /// <param name="equation">the caller's equation (for messages)</param>
    /// <param name="named">it with every dim named (any ellipsis replaced)</param>
    /// <param name="operands">the operands</param>
    private static (string[] Inputs, string Output) ParseEinsum(string equation, string named, Tensor[] operands)
    {
        var eq = named.Replace(" ", "");
        if (eq.Contains("..."))
            throw new ArgumentException($"einsum '{equation}': '...' in the output only, or more than one per operand");
        var parts = eq.Split("->");
        if (parts.Length > 2)
            throw new ArgumentException($"einsum '{equation}': more than one '->'");
        var inputs = parts[0].Split(',');
        if (inputs.Length != operands.Length)
            throw new ArgumentException(
                $"einsum '{equation}': {inputs.Length} operand spec(s) for {operands.Length} tensor(s)"
            );
        foreach (char c in eq)
            if (!char.IsAsciiLetter(c) && c is not (',' or '-' or '>'))
                throw new ArgumentException($"einsum '{equation}': '{c}' is not a letter a-z or A-Z");
        for (int i = 0; i < inputs.Length; i++)
            if (inputs[i].Length != operands[i].Rank)
                throw new ShapeMismatchException(
                    $"einsum '{equation}': operand {i} spec '{inputs[i]}' names {inputs[i].Length} dims but its shape "
                        + $"is {Shapes.Format(operands[i].Shape)}"
                );
        string all = string.Concat(inputs);
        string output =
            parts.Length == 2
                ? parts[1]
                : string.Concat(all.Distinct().Where(c => all.Count(x => x == c) == 1).Order());
        if (output.Distinct().Count() != output.Length)
            throw new ArgumentException($"einsum '{equation}': the output repeats a letter");
        foreach (char c in output)
            if (!all.Contains(c))
                throw new ArgumentException($"einsum '{equation}': output letter '{c}' is in no operand");
        return (inputs, output);
    }

    /// <summary>One operand with its repeated letters reduced to their diagonal and the letters no one else needs
    /// summed away.</summary>
    private static (Tensor, string) Prepare(Tensor x, string letters, string needed)
    {
        var t = Identity(x);
        var l = letters;
        while (true)
        {
            int i = Enumerable.Range(0, l.Length).FirstOrDefault(k => l.IndexOf(l[k], k + 1) >= 0, -1);
            if (i < 0)
                break;
            int j = l.IndexOf(l[i], i + 1);
            // The diagonal of dims i and j becomes the last dim.
            using var before = t;
            t = Diagonal(before, 0, i, j);
            l = l.Remove(j, 1).Remove(i, 1) + l[i];
        }
        var drop = Enumerable.Range(0, l.Length).Where(k => !needed.Contains(l[k])).ToArray();
        if (drop.Length == 0)
            return (t, l);
        using (t)
            return (Sum(t, drop), string.Concat(l.Where((_, k) => Array.IndexOf(drop, k) < 0)));
    }

    /// <summary>a · b contracted over the letters they share that <paramref name="later"/> does not need: one batched
    /// matmul [batch, m, k] @ [batch, k, n], where batch letters are shared and kept, m / n the kept letters of one
    /// side.</summary>
    private static (Tensor, string) Contract((Tensor T, string L) a, (Tensor T, string L) b, string later)
    {
        string shared = string.Concat(a.L.Where(b.L.Contains));
        string batch = string.Concat(shared.Where(later.Contains));
        string summed = string.Concat(shared.Where(c => !later.Contains(c)));
        string aOnly = string.Concat(a.L.Where(c => !shared.Contains(c)));
        string bOnly = string.Concat(b.L.Where(c => !shared.Contains(c)));
        int Size(string letters, (Tensor T, string L) side) =>
            letters.Aggregate(1, (n, c) => n * side.T.Shape[side.L.IndexOf(c)]);
        using var pa = Permute(a.T, (batch + aOnly + summed).Select(c => a.L.IndexOf(c)).ToArray());
        using var pb = Permute(b.T, (batch + summed + bOnly).Select(c => b.L.IndexOf(c)).ToArray());
        int nb = Size(batch, a),
            m = Size(aOnly, a),
            k = Size(summed, a),
            n = Size(bOnly, b);
        using var ra = Reshape(pa, nb, m, k);
        using var rb = Reshape(pb, nb, k, n);
        using var product = MatMul(ra, rb);
        var shape = batch
            .Select(c => a.T.Shape[a.L.IndexOf(c)])
            .Concat(aOnly.Select(c => a.T.Shape[a.L.IndexOf(c)]))
            .Concat(bOnly.Select(c => b.T.Shape[b.L.IndexOf(c)]))
            .ToArray();
        return (Reshape(product, shape), batch + aOnly + bOnly);
    }
}
