//! `TreeEnsembleClassifier` and `TreeEnsembleRegressor` (ai.onnx.ml), our
//! own implementation in place of tract's (which walks the whole leaf table
//! per tree, and gets binary classifiers' labels wrong).
//!
//! At load time each tree is flattened into one contiguous node array:
//! 16-byte nodes holding the feature, the threshold and both children, a
//! leaf pointing at itself on both sides. Evaluation goes row block by row
//! block (the block's features stay in cache while every tree runs over
//! them) and walks [`LANES`] rows through a tree at once for exactly the
//! tree's depth: no data-dependent branch, and the lanes' independent loads
//! overlap. Comparison mode and missing-value tracking are resolved at load
//! time into a monomorphized loop.
//!
//! Semantics follow the ONNX-ML spec where it is precise, and onnxruntime
//! where it is not (the binary-classifier layouts, `base_values` of length 1
//! or 2, post-transforms of a single regression target): the point is to
//! give the same answers as the runtime the model was validated with.
//! `models/ml_cases.py` pins every variant against onnxruntime; the tests
//! below replay them.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::Built;
use super::post::{PostTransform, logistic, probit};

/// Rows walked through a tree together.
const LANES: usize = 8;
/// Rows per block: a block's features (BLOCK × columns floats) stay in
/// cache while every tree runs over them.
const BLOCK: usize = 128;

/// Low bits of [`Node::bits`]: the feature index.
const FEATURE_MASK: u32 = (1 << 28) - 1;
/// Bit 31 of [`Node::bits`]: a missing value (NaN) goes to the true branch.
const NAN_TRUE: u32 = 1 << 31;
/// Bits 28..31 of [`Node::bits`]: the comparison, as [`Cmp`].
const MODE_SHIFT: u32 = 28;

/// One node, 16 bytes: four to a cache line.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Node {
    /// Feature index, comparison and NaN flag (see the masks above).
    bits: u32,
    threshold: f32,
    /// Next node when the test is false (`[0]`) or true (`[1]`); a leaf's
    /// point at itself.
    next: [u32; 2],
}

/// The ONNX-ML branch modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Cmp {
    Leq = 0,
    Lt = 1,
    Gte = 2,
    Gt = 3,
    Eq = 4,
    Neq = 5,
}

impl Cmp {
    fn parse(mode: &str) -> TractResult<Option<Cmp>> {
        Ok(Some(match mode {
            "BRANCH_LEQ" => Cmp::Leq,
            "BRANCH_LT" => Cmp::Lt,
            "BRANCH_GTE" => Cmp::Gte,
            "BRANCH_GT" => Cmp::Gt,
            "BRANCH_EQ" => Cmp::Eq,
            "BRANCH_NEQ" => Cmp::Neq,
            "LEAF" => return Ok(None),
            "BRANCH_MEMBER" => bail!(
                "node mode BRANCH_MEMBER (set membership, TreeEnsemble opset 5) is not supported"
            ),
            other => bail!("unknown node mode {other:?}"),
        }))
    }
}

/// How leaf votes combine across trees (regressors; classifiers sum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// The flattened ensemble: what both operators evaluate.
#[derive(Debug)]
pub(crate) struct Forest {
    nodes: Vec<Node>,
    /// Per tree: root index into `nodes` and depth (edges on the longest
    /// root-to-leaf path).
    trees: Vec<(u32, u32)>,
    /// Votes of node `i`: `votes[vote_start[i]..vote_start[i + 1]]`.
    vote_start: Vec<u32>,
    votes: Vec<(u32, f32)>,
    /// Outputs (classes or targets).
    n_out: usize,
    /// Columns the input needs (largest feature index + 1).
    n_features: usize,
    /// The one comparison every branch uses, if they all use the same.
    uniform: Option<Cmp>,
    any_nan_true: bool,
}

/// The attribute families of one operator: `nodes_*` and `class_*` or
/// `target_*`.
struct Attributes<'a> {
    node: &'a NodeProto,
    prefix: &'static str,
}

impl<'a> Attributes<'a> {
    fn ints(&self, name: &str) -> TractResult<Vec<i64>> {
        Ok(self.node.get_attr_opt_vec::<i64>(name)?.unwrap_or_default())
    }

    fn floats(&self, name: &str) -> TractResult<Vec<f32>> {
        if self.node.get_attr_opt_vec::<f32>(name)?.is_none()
            && self.node.attribute.iter().any(|a| a.name == format!("{name}_as_tensor"))
        {
            bail!(
                "{name}_as_tensor (double precision thresholds or weights) is not supported; \
                 export with float attributes"
            );
        }
        Ok(self.node.get_attr_opt_vec::<f32>(name)?.unwrap_or_default())
    }

    fn same_len<T>(&self, name: &str, v: &[T], n: usize) -> TractResult<()> {
        ensure!(v.len() == n, "attribute {name} has {} values, expected {n}", v.len());
        Ok(())
    }
}

impl Forest {
    /// Builds the forest from a node's attributes; `n_out` classes or
    /// targets.
    fn parse(node: &NodeProto, classifier: bool, n_out: usize) -> TractResult<Forest> {
        let a = Attributes { node, prefix: if classifier { "class" } else { "target" } };
        let tree_ids = a.ints("nodes_treeids")?;
        let n = tree_ids.len();
        ensure!(n > 0, "no nodes (nodes_treeids is empty)");
        let node_ids = a.ints("nodes_nodeids")?;
        let features = a.ints("nodes_featureids")?;
        let values = a.floats("nodes_values")?;
        let trues = a.ints("nodes_truenodeids")?;
        let falses = a.ints("nodes_falsenodeids")?;
        let modes: Vec<String> = node.get_attr_opt_vec("nodes_modes")?.unwrap_or_default();
        for (name, len) in [
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", features.len()),
            ("nodes_values", values.len()),
            ("nodes_truenodeids", trues.len()),
            ("nodes_falsenodeids", falses.len()),
            ("nodes_modes", modes.len()),
        ] {
            ensure!(len == n, "attribute {name} has {len} values, expected {n}");
        }
        let nan_true = a.ints("nodes_missing_value_tracks_true")?;
        ensure!(
            nan_true.is_empty() || nan_true.len() == n,
            "attribute nodes_missing_value_tracks_true has {} values, expected {n}",
            nan_true.len()
        );
        let modes: Vec<Option<Cmp>> =
            modes.iter().map(|m| Cmp::parse(m)).collect::<TractResult<_>>()?;

        // (tree, node id) → attribute index; the first node of each tree
        // (in attribute order) is its root, as in onnxruntime.
        let mut index = HashMap::with_capacity(n);
        let mut roots: Vec<usize> = vec![];
        let mut seen_trees = HashMap::new();
        for i in 0..n {
            ensure!(
                index.insert((tree_ids[i], node_ids[i]), i).is_none(),
                "node {} of tree {} is defined twice",
                node_ids[i],
                tree_ids[i]
            );
            if seen_trees.insert(tree_ids[i], roots.len()).is_none() {
                roots.push(i);
            }
        }
        let child = |i: usize, id: i64, which: &str| -> TractResult<usize> {
            index.get(&(tree_ids[i], id)).copied().with_context(|| {
                format!(
                    "node {} of tree {}: {which} node {id} does not exist",
                    node_ids[i], tree_ids[i]
                )
            })
        };

        // Votes by leaf.
        let vote_tree = a.ints(&format!("{}_treeids", a.prefix))?;
        let vote_node = a.ints(&format!("{}_nodeids", a.prefix))?;
        let vote_id = a.ints(&format!("{}_ids", a.prefix))?;
        let vote_weight = a.floats(&format!("{}_weights", a.prefix))?;
        let m = vote_id.len();
        a.same_len(&format!("{}_treeids", a.prefix), &vote_tree, m)?;
        a.same_len(&format!("{}_nodeids", a.prefix), &vote_node, m)?;
        a.same_len(&format!("{}_weights", a.prefix), &vote_weight, m)?;
        let mut by_leaf: Vec<Vec<(u32, f32)>> = vec![vec![]; n];
        for v in 0..m {
            let at = *index.get(&(vote_tree[v], vote_node[v])).with_context(|| {
                format!(
                    "a vote for node {} of tree {}, which does not exist",
                    vote_node[v], vote_tree[v]
                )
            })?;
            ensure!(
                (0..n_out as i64).contains(&vote_id[v]),
                "a vote for output {} of {n_out}",
                vote_id[v]
            );
            // Votes on branch nodes (old onnxmltools exports) are ignored,
            // as onnxruntime does.
            if modes[at].is_none() {
                by_leaf[at].push((vote_id[v] as u32, vote_weight[v]));
            }
        }

        // Flatten tree by tree, depth-first from the root, each node once
        // (a DAG, as LightGBM's set-membership chains make, stays a DAG).
        let mut forest = Forest {
            nodes: Vec::with_capacity(n),
            trees: Vec::with_capacity(roots.len()),
            vote_start: vec![0],
            votes: Vec::with_capacity(m),
            n_out,
            n_features: 0,
            uniform: None,
            any_nan_true: false,
        };
        let mut placed: Vec<Option<u32>> = vec![None; n];
        let mut all_modes = vec![];
        for &root in &roots {
            let mut stack = vec![root];
            while let Some(i) = stack.pop() {
                if placed[i].is_some() {
                    continue;
                }
                placed[i] = Some(forest.nodes.len() as u32);
                forest.nodes.push(Node { bits: 0, threshold: 0.0, next: [0, 0] });
                forest.votes.extend(by_leaf[i].iter().copied());
                forest.vote_start.push(forest.votes.len() as u32);
                if modes[i].is_some() {
                    stack.push(child(i, trues[i], "true")?);
                    stack.push(child(i, falses[i], "false")?);
                }
            }
        }
        ensure!(
            forest.nodes.len() <= FEATURE_MASK as usize,
            "{} nodes: too many",
            forest.nodes.len()
        );
        for i in 0..n {
            let Some(at) = placed[i] else { continue }; // unreachable from a root
            let node = &mut forest.nodes[at as usize];
            match modes[i] {
                None => node.next = [at, at],
                Some(cmp) => {
                    let feature = u32::try_from(features[i])
                        .ok()
                        .filter(|f| *f <= FEATURE_MASK)
                        .with_context(|| format!("feature index {} out of range", features[i]))?;
                    forest.n_features = forest.n_features.max(feature as usize + 1);
                    let track = nan_true.get(i).is_some_and(|t| *t != 0);
                    forest.any_nan_true |= track;
                    all_modes.push(cmp);
                    node.bits =
                        feature | (cmp as u32) << MODE_SHIFT | if track { NAN_TRUE } else { 0 };
                    node.threshold = values[i];
                    let t = placed[child(i, trues[i], "true")?].expect("children are placed");
                    let f = placed[child(i, falses[i], "false")?].expect("children are placed");
                    node.next = [f, t];
                }
            }
        }
        for &root in &roots {
            let root = placed[root].expect("roots are placed");
            let depth = forest.depth(root)?;
            forest.trees.push((root, depth));
        }
        forest.uniform = match all_modes.first() {
            Some(first) if all_modes.iter().all(|m| m == first) => Some(*first),
            Some(_) => None,
            None => Some(Cmp::Leq),
        };
        Ok(forest)
    }

    /// Edges on the longest path from `root` to a leaf; an error on a cycle.
    fn depth(&self, root: u32) -> TractResult<u32> {
        // Iterative post-order: (node, children done).
        let mut height: HashMap<u32, u32> = HashMap::new();
        let mut on_path: HashMap<u32, ()> = HashMap::new();
        let mut stack = vec![(root, false)];
        while let Some((at, done)) = stack.pop() {
            let node = self.nodes[at as usize];
            let leaf = node.next == [at, at];
            if leaf {
                height.insert(at, 0);
                continue;
            }
            if done {
                on_path.remove(&at);
                let h = 1 + height[&node.next[0]].max(height[&node.next[1]]);
                height.insert(at, h);
                continue;
            }
            if height.contains_key(&at) {
                continue;
            }
            ensure!(on_path.insert(at, ()).is_none(), "a tree has a cycle");
            stack.push((at, true));
            for next in node.next {
                ensure!(!on_path.contains_key(&next), "a tree has a cycle");
                if !height.contains_key(&next) {
                    stack.push((next, false));
                }
            }
        }
        Ok(height[&root])
    }

    /// Scores `rows` rows of `width` features (row-major) into `out`
    /// (`rows × n_out` raw aggregated scores, before base values) and
    /// `has` (whether any reached leaf voted for that output).
    fn accumulate(
        &self,
        x: &[f32],
        width: usize,
        aggregate: Aggregate,
        out: &mut [f32],
        has: &mut [bool],
    ) {
        match (self.uniform, self.any_nan_true) {
            (Some(Cmp::Leq), false) => self.run::<Leq, false>(x, width, aggregate, out, has),
            (Some(Cmp::Leq), true) => self.run::<Leq, true>(x, width, aggregate, out, has),
            (Some(Cmp::Lt), false) => self.run::<Lt, false>(x, width, aggregate, out, has),
            (Some(Cmp::Lt), true) => self.run::<Lt, true>(x, width, aggregate, out, has),
            (Some(Cmp::Gte), false) => self.run::<Gte, false>(x, width, aggregate, out, has),
            (Some(Cmp::Gt), false) => self.run::<Gt, false>(x, width, aggregate, out, has),
            (_, false) => self.run::<Mixed, false>(x, width, aggregate, out, has),
            (_, true) => self.run::<Mixed, true>(x, width, aggregate, out, has),
        }
    }

    fn run<S: Split, const NAN: bool>(
        &self,
        x: &[f32],
        width: usize,
        aggregate: Aggregate,
        out: &mut [f32],
        has: &mut [bool],
    ) {
        let rows = x.len() / width;
        let k = self.n_out;
        let mut leaves = [0u32; BLOCK];
        for start in (0..rows).step_by(BLOCK) {
            let n = BLOCK.min(rows - start);
            let xb = &x[start * width..(start + n) * width];
            let ob = &mut out[start * k..(start + n) * k];
            let hb = &mut has[start * k..(start + n) * k];
            for &(root, depth) in &self.trees {
                walk::<S, NAN>(&self.nodes, root, depth, xb, width, &mut leaves[..n]);
                for (r, &leaf) in leaves[..n].iter().enumerate() {
                    let votes = &self.votes[self.vote_start[leaf as usize] as usize
                        ..self.vote_start[leaf as usize + 1] as usize];
                    let o = &mut ob[r * k..(r + 1) * k];
                    let h = &mut hb[r * k..(r + 1) * k];
                    for &(id, w) in votes {
                        let id = id as usize;
                        o[id] = match aggregate {
                            Aggregate::Sum | Aggregate::Average => o[id] + w,
                            Aggregate::Min if h[id] => o[id].min(w),
                            Aggregate::Max if h[id] => o[id].max(w),
                            Aggregate::Min | Aggregate::Max => w,
                        };
                        h[id] = true;
                    }
                }
            }
        }
    }
}

/// One branch test, monomorphized per comparison.
trait Split {
    fn goes_true(x: f32, threshold: f32, bits: u32) -> bool;
}

macro_rules! split {
    ($name:ident, $x:ident, $t:ident, $test:expr) => {
        struct $name;
        impl Split for $name {
            #[inline(always)]
            fn goes_true($x: f32, $t: f32, _bits: u32) -> bool {
                $test
            }
        }
    };
}
split!(Leq, x, t, x <= t);
split!(Lt, x, t, x < t);
split!(Gte, x, t, x >= t);
split!(Gt, x, t, x > t);

/// Trees whose branches do not all compare the same way.
struct Mixed;
impl Split for Mixed {
    #[inline(always)]
    fn goes_true(x: f32, t: f32, bits: u32) -> bool {
        match (bits >> MODE_SHIFT) & 7 {
            0 => x <= t,
            1 => x < t,
            2 => x >= t,
            3 => x > t,
            4 => x == t,
            _ => x != t,
        }
    }
}

/// The leaf each of the block's rows reaches in the tree at `root`.
#[inline(always)]
fn walk<S: Split, const NAN: bool>(
    nodes: &[Node],
    root: u32,
    depth: u32,
    x: &[f32],
    width: usize,
    leaves: &mut [u32],
) {
    let step = |at: u32, row: &[f32]| -> u32 {
        let node = nodes[at as usize];
        let v = row[(node.bits & FEATURE_MASK) as usize];
        let go = S::goes_true(v, node.threshold, node.bits)
            | (NAN && node.bits & NAN_TRUE != 0 && v.is_nan());
        node.next[go as usize]
    };
    let mut chunks = leaves.chunks_exact_mut(LANES);
    let mut r = 0;
    for chunk in &mut chunks {
        let mut at = [root; LANES];
        let rows: [&[f32]; LANES] =
            std::array::from_fn(|l| &x[(r + l) * width..(r + l + 1) * width]);
        for _ in 0..depth {
            for l in 0..LANES {
                at[l] = step(at[l], rows[l]);
            }
        }
        chunk.copy_from_slice(&at);
        r += LANES;
    }
    for leaf in chunks.into_remainder() {
        let row = &x[r * width..(r + 1) * width];
        let mut at = root;
        for _ in 0..depth {
            at = step(at, row);
        }
        *leaf = at;
        r += 1;
    }
}

/// `TreeEnsembleRegressor`.
#[derive(Debug, Clone)]
pub(crate) struct Regressor {
    forest: Arc<Forest>,
    aggregate: Aggregate,
    post: PostTransform,
    base: Vec<f32>,
}

/// `TreeEnsembleClassifier`: int64 labels and float scores.
#[derive(Debug, Clone)]
pub(crate) struct Classifier {
    forest: Arc<Forest>,
    post: PostTransform,
    base: Vec<f32>,
    /// `classlabels_int64s`, or 0..n for string labels (served as the
    /// class index; the names are listed in the model metadata).
    labels: Vec<i64>,
    /// Every vote goes to one class (onnxruntime's "binary case").
    one_class_votes: bool,
    all_weights_positive: bool,
}

// Ops compare by identity: two loads of one model are different ops.
impl PartialEq for Regressor {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.forest, &other.forest)
    }
}
impl Eq for Regressor {}
impl PartialEq for Classifier {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.forest, &other.forest)
    }
}
impl Eq for Classifier {}

fn base_values(node: &NodeProto) -> TractResult<Vec<f32>> {
    if node.get_attr_opt_vec::<f32>("base_values")?.is_none()
        && node.attribute.iter().any(|a| a.name == "base_values_as_tensor")
    {
        bail!(
            "base_values_as_tensor (double precision) is not supported; export with float attributes"
        );
    }
    Ok(node.get_attr_opt_vec::<f32>("base_values")?.unwrap_or_default())
}

/// Parses a `TreeEnsembleRegressor` node.
pub(crate) fn regressor(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let n_targets: i64 = node.get_attr_opt("n_targets")?.unwrap_or(1);
    ensure!(n_targets >= 1, "n_targets is {n_targets}");
    let aggregate = match node.get_attr_opt::<&str>("aggregate_function")?.unwrap_or("SUM") {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Average,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => bail!("unknown aggregate_function {other:?}"),
    };
    let forest = Forest::parse(node, false, n_targets as usize)?;
    let op = Regressor {
        forest: Arc::new(forest),
        aggregate,
        post: super::post_transform(node)?,
        base: base_values(node)?,
    };
    Ok((expand(op), vec![]))
}

/// Parses a `TreeEnsembleClassifier` node.
pub(crate) fn classifier(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let labels = super::class_labels(node, "classlabels_int64s")?;
    let forest = Forest::parse(node, true, labels.len())?;
    let classes: std::collections::HashSet<u32> = forest.votes.iter().map(|v| v.0).collect();
    let op = Classifier {
        one_class_votes: classes.len() == 1,
        all_weights_positive: forest.votes.iter().all(|v| v.1 >= 0.0),
        forest: Arc::new(forest),
        post: super::post_transform(node)?,
        base: base_values(node)?,
        labels,
    };
    Ok((expand(op), vec![]))
}

impl Regressor {
    /// One row's final scores from its raw aggregate (onnxruntime's
    /// `FinalizeScores` / `FinalizeScores1`).
    fn finish(&self, raw: &mut [f32], has: &[bool]) {
        let n_trees = self.forest.trees.len() as f32;
        if raw.len() == 1 {
            let origin = if self.base.len() == 1 { self.base[0] } else { 0.0 };
            let s = match self.aggregate {
                Aggregate::Sum => raw[0] + origin,
                Aggregate::Average => raw[0] / n_trees + origin,
                Aggregate::Min | Aggregate::Max => (if has[0] { raw[0] } else { 0.0 }) + origin,
            };
            // A single target only knows PROBIT (onnxruntime ignores the
            // other transforms there; so do we, for the same answers).
            raw[0] = if self.post == PostTransform::Probit { probit(s) } else { s };
            return;
        }
        let use_base = self.base.len() == raw.len();
        for (j, s) in raw.iter_mut().enumerate() {
            let base = if use_base { self.base[j] } else { 0.0 };
            // A target no reached leaf voted for is 0, base value or not
            // (onnxruntime writes unscored values as 0).
            *s = match self.aggregate {
                _ if !has[j] => 0.0,
                Aggregate::Sum | Aggregate::Min | Aggregate::Max => *s + base,
                Aggregate::Average => *s / n_trees + base,
            };
        }
        self.post.apply(raw);
    }
}

impl Classifier {
    /// One row's label and final scores from its raw sums.
    fn finish(&self, raw: &mut [f32], has: &mut [bool]) -> i64 {
        if raw.len() > 2 {
            for (k, b) in self.base.iter().enumerate() {
                raw[k] = if has[k] { raw[k] + b } else { *b };
                has[k] = true;
            }
            let mut best: Option<usize> = None;
            for k in 0..raw.len() {
                if has[k] && best.is_none_or(|b| raw[k] > raw[b]) {
                    best = Some(k);
                }
            }
            for k in 0..raw.len() {
                if !has[k] {
                    raw[k] = 0.0;
                }
            }
            self.post.apply(raw);
            return self.labels[best.unwrap_or(0)];
        }
        // Two classes: onnxruntime's layouts, case by case.
        let mut extra = None; // how to make two columns out of one score
        let mut single = false; // only the first score is meaningful
        match self.base.len() {
            2 if has[1] => {
                raw[1] = self.base[1] + raw[0];
                raw[0] = -raw[1];
            }
            2 => {
                raw[1] += self.base[1];
                raw[0] += self.base[0];
            }
            1 => {
                raw[0] += self.base[0];
                single = !has[1];
            }
            0 => {
                extra = Some(3);
                single = !has[1];
            }
            _ => {}
        }
        let positive = if !single && has[1] {
            raw[1]
        } else if has[0] {
            raw[0]
        } else {
            0.0
        };
        let label = if self.one_class_votes {
            let (winner, how) = match (self.all_weights_positive, positive) {
                (true, p) if p > 0.5 => (1, 0),
                (true, _) => (0, 1),
                (false, p) if p > 0.0 => (1, 2),
                (false, _) => (0, 3),
            };
            extra = Some(how);
            self.labels[winner]
        } else if positive > 0.0 {
            1
        } else {
            0
        };
        if !single {
            for k in 0..2 {
                if !has[k] {
                    raw[k] = 0.0;
                }
            }
            self.post.apply(raw);
            return label;
        }
        let s = if has[0] { raw[0] } else { 0.0 };
        // One score, two columns. onnxruntime leaves the second column
        // uninitialized after PROBIT or when it has no rule (`None`): 0 here.
        [raw[0], raw[1]] = match (self.post, extra) {
            (PostTransform::Probit, _) => [probit(s), 0.0],
            (PostTransform::Logistic, Some(_)) => [logistic(-s), logistic(s)],
            (_, Some(0 | 1)) => [1.0 - s, s],
            (_, Some(_)) => [-s, s],
            (_, None) => [s, 0.0],
        };
        label
    }
}

/// Runs the forest over a [rows × columns] f32 input: raw scores and
/// has-vote flags, `rows × n_out` each.
fn raw_scores(
    forest: &Forest,
    aggregate: Aggregate,
    input: &Tensor,
) -> TractResult<(usize, Vec<f32>, Vec<bool>)> {
    let input = input.cast_to::<f32>()?;
    let view = input.to_plain_array_view::<f32>()?;
    ensure!(view.ndim() == 2, "tree ensemble input must be 2-D, got shape {:?}", view.shape());
    let (rows, width) = (view.shape()[0], view.shape()[1]);
    ensure!(
        width >= forest.n_features,
        "the trees read feature {} but the input has {width} columns",
        forest.n_features - 1
    );
    let x = view.as_slice().context("tree ensemble input is not contiguous")?;
    let mut out = vec![0f32; rows * forest.n_out];
    let mut has = vec![false; rows * forest.n_out];
    if width > 0 {
        forest.accumulate(x, width, aggregate, &mut out, &mut has);
    }
    Ok((rows, out, has))
}

impl Op for Regressor {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Regressor {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (rows, mut out, has) = raw_scores(&self.forest, self.aggregate, &inputs[0])?;
        let k = self.forest.n_out;
        if k > 0 {
            for (raw, has) in out.chunks_exact_mut(k).zip(has.chunks_exact(k)) {
                self.finish(raw, has);
            }
        }
        Ok(tvec!(Tensor::from_shape(&[rows, k], &out)?.into_tvalue()))
    }
}

impl TypedOp for Regressor {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact([inputs[0].shape[0].clone(), self.forest.n_out.to_dim()])))
    }

    as_op!();
}

impl Op for Classifier {
    fn name(&self) -> StaticName {
        "TreeEnsembleClassifier".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Classifier {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (rows, mut out, mut has) = raw_scores(&self.forest, Aggregate::Sum, &inputs[0])?;
        let k = self.forest.n_out;
        let labels: Vec<i64> = out
            .chunks_exact_mut(k)
            .zip(has.chunks_exact_mut(k))
            .map(|(raw, has)| self.finish(raw, has))
            .collect();
        Ok(tvec!(
            Tensor::from_shape(&[rows], &labels)?.into_tvalue(),
            Tensor::from_shape(&[rows, k], &out)?.into_tvalue()
        ))
    }
}

impl TypedOp for Classifier {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = inputs[0].shape[0].clone();
        Ok(tvec!(i64::fact([n.clone()]), f32::fact([n, self.forest.n_out.to_dim()])))
    }

    as_op!();
}

impl Expansion for Regressor {
    fn name(&self) -> StaticName {
        "TreeEnsembleRegressor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        super::regressor_rules(s, inputs, outputs, self.forest.n_out)
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Expansion for Classifier {
    fn name(&self) -> StaticName {
        "TreeEnsembleClassifier".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        super::classifier_rules(s, inputs, outputs, self.forest.n_out)
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

#[cfg(test)]
mod tests {
    use crate::ml::conformance::check_all;

    #[test]
    fn fast_exp_is_within_two_ulps_of_libm() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (crate::ml::post::exp(x), x.exp());
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(ulps <= 2, "exp({x}) = {got}, libm {want}: {ulps} ulps");
            x += 0.0137;
        }
    }

    #[test]
    fn regressors_match_onnxruntime_in_every_variant() {
        check_all("tree-reg");
    }

    #[test]
    fn classifiers_match_onnxruntime_in_every_variant() {
        check_all("tree-clf");
    }
}
