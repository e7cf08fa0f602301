// Command protobuf-schema writes kube-sim's src/protobuf/schema.rs: for every kind kube-sim
// serves, the protobuf field numbers, Go field names, JSON names and JSON emptiness rules of
// the k8s.io/api Go types, read by reflection from their `protobuf` and `json` struct tags
// (the tags generated.proto is itself generated from). Run with `go run . > ../src/protobuf/schema.rs`.
package main

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type root struct {
	apiVersion, kind string
	t                reflect.Type
}

var roots = []root{
	{"v1", "Service", reflect.TypeOf(corev1.Service{})},
	{"v1", "ConfigMap", reflect.TypeOf(corev1.ConfigMap{})},
	{"v1", "Namespace", reflect.TypeOf(corev1.Namespace{})},
	{"v1", "Node", reflect.TypeOf(corev1.Node{})},
	{"v1", "Pod", reflect.TypeOf(corev1.Pod{})},
	{"v1", "Event", reflect.TypeOf(corev1.Event{})},
	{"v1", "Endpoints", reflect.TypeOf(corev1.Endpoints{})},
	{"v1", "Secret", reflect.TypeOf(corev1.Secret{})},
	{"v1", "ServiceAccount", reflect.TypeOf(corev1.ServiceAccount{})},
	{"events.k8s.io/v1", "Event", reflect.TypeOf(eventsv1.Event{})},
	{"discovery.k8s.io/v1", "EndpointSlice", reflect.TypeOf(discoveryv1.EndpointSlice{})},
	{"coordination.k8s.io/v1", "Lease", reflect.TypeOf(coordinationv1.Lease{})},
	{"apps/v1", "Deployment", reflect.TypeOf(appsv1.Deployment{})},
	{"apps/v1", "ReplicaSet", reflect.TypeOf(appsv1.ReplicaSet{})},
	{"apps/v1", "DaemonSet", reflect.TypeOf(appsv1.DaemonSet{})},
	{"rbac.authorization.k8s.io/v1", "Role", reflect.TypeOf(rbacv1.Role{})},
	{"rbac.authorization.k8s.io/v1", "RoleBinding", reflect.TypeOf(rbacv1.RoleBinding{})},
	{"rbac.authorization.k8s.io/v1", "ClusterRole", reflect.TypeOf(rbacv1.ClusterRole{})},
	{"rbac.authorization.k8s.io/v1", "ClusterRoleBinding", reflect.TypeOf(rbacv1.ClusterRoleBinding{})},
	{"meta.k8s.io/v1", "DeleteOptions", reflect.TypeOf(metav1.DeleteOptions{})},
}

// Types whose protobuf and JSON forms are not their Go fields.
var special = map[reflect.Type]string{
	reflect.TypeOf(metav1.Time{}):          "Time",
	reflect.TypeOf(metav1.MicroTime{}):     "MicroTime",
	reflect.TypeOf(intstr.IntOrString{}):   "IntOrString",
	reflect.TypeOf(resource.Quantity{}):    "Quantity",
	reflect.TypeOf(runtime.RawExtension{}): "RawJson",
	reflect.TypeOf(metav1.FieldsV1{}):      "RawJson",
}

type field struct {
	number           int
	goName, jsonName string
	ty               string
	rule             string
}

var (
	index    = map[reflect.Type]int{}
	order    []reflect.Type
	messages [][]field
)

func msgID(t reflect.Type) int {
	if id, ok := index[t]; ok {
		return id
	}
	id := len(order)
	index[t] = id
	order = append(order, t)
	messages = append(messages, nil)
	messages[id] = fieldsOf(t)
	return id
}

func scalar(t reflect.Type, wire string) string {
	if s, ok := special[t]; ok {
		return "Ty::" + s
	}
	switch t.Kind() {
	case reflect.String:
		return "Ty::String"
	case reflect.Bool:
		return "Ty::Bool"
	case reflect.Int32:
		return "Ty::Int32"
	case reflect.Int64, reflect.Int:
		return "Ty::Int64"
	case reflect.Uint32:
		return "Ty::Uint32"
	case reflect.Uint64:
		return "Ty::Uint64"
	case reflect.Float64:
		return "Ty::Double"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "Ty::Bytes"
		}
	case reflect.Struct:
		return fmt.Sprintf("Ty::Message(%d)", msgID(t))
	}
	panic(fmt.Sprintf("unsupported type %v (wire %s)", t, wire))
}

func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("protobuf")
		if tag == "" {
			continue // TypeMeta and other inline fields without a protobuf number
		}
		parts := strings.Split(tag, ",")
		var num int
		fmt.Sscanf(parts[1], "%d", &num)
		jsonTag := strings.Split(f.Tag.Get("json"), ",")
		omit := strings.Contains(f.Tag.Get("json"), ",omitempty")
		ft := f.Type
		fl := field{number: num, goName: f.Name, jsonName: jsonTag[0]}
		switch {
		case ft.Kind() == reflect.Map:
			fl.rule = "Rule::Map"
			fl.ty = scalar(ft.Elem(), parts[0])
			if ft.Elem().Kind() == reflect.Slice && ft.Elem().Elem().Kind() != reflect.Uint8 {
				panic(fmt.Sprintf("map of lists in %v.%s", t, f.Name))
			}
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() != reflect.Uint8:
			fl.rule = "Rule::Repeated"
			fl.ty = scalar(ft.Elem(), parts[0])
		case ft.Kind() == reflect.Ptr:
			fl.rule = "Rule::Pointer"
			if ft.Elem().Kind() == reflect.Slice && ft.Elem().Elem().Kind() != reflect.Uint8 {
				panic(fmt.Sprintf("pointer to list in %v.%s", t, f.Name))
			}
			fl.ty = scalar(ft.Elem(), parts[0])
		case jsonTag[0] == "":
			// An embedded struct whose fields JSON inlines into the parent object.
			fl.rule = "Rule::Inline"
			fl.ty = scalar(ft, parts[0])
		default:
			if omit {
				fl.rule = "Rule::OmitEmpty"
			} else {
				fl.rule = "Rule::Always"
			}
			fl.ty = scalar(ft, parts[0])
		}
		out = append(out, fl)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].number < out[b].number })
	return out
}

func main() {
	type rootOut struct {
		apiVersion, kind string
		id               int
	}
	var rs []rootOut
	for _, r := range roots {
		rs = append(rs, rootOut{r.apiVersion, r.kind, msgID(r.t)})
	}
	w := os.Stdout
	fmt.Fprintln(w, "//! Generated by `tests/kube-sim/protobuf-schema` (`go run . > ../src/protobuf/schema.rs`)")
	fmt.Fprintln(w, "//! from the k8s.io/api v0.32 Go types' `protobuf` and `json` struct tags. Do not edit.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "use super::schema_types::{Field, Message, Root, Rule, Ty};")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "/// The top-level kinds a protobuf body may carry.")
	fmt.Fprintln(w, "pub static ROOTS: &[Root] = &[")
	for _, r := range rs {
		fmt.Fprintf(w, "    Root { api_version: %q, kind: %q, message: %d },\n", r.apiVersion, r.kind, r.id)
	}
	fmt.Fprintln(w, "];")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "/// Every message reachable from [`ROOTS`], indexed by `Ty::Message`.")
	fmt.Fprintln(w, "pub static MESSAGES: &[Message] = &[")
	for id, t := range order {
		fmt.Fprintf(w, "    // %d\n    Message {\n        name: %q,\n        fields: &[\n", id, t.Name())
		for _, f := range messages[id] {
			fmt.Fprintf(w, "            Field { number: %d, go_name: %q, json_name: %q, ty: %s, rule: %s },\n",
				f.number, f.goName, f.jsonName, f.ty, f.rule)
		}
		fmt.Fprintln(w, "        ],\n    },")
	}
	fmt.Fprintln(w, "];")
}
